package stratum

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Error codes used by Stratum V1 pools in the wild.
const (
	CodeOther         = 20
	CodeJobNotFound   = 21
	CodeDuplicate     = 22
	CodeLowDifficulty = 23
	CodeUnauthorized  = 24
	CodeNotSubscribed = 25
)

// Error is a Stratum error as carried in the "error" member of a reply.
type Error struct {
	Code    int
	Message string
}

// Errorf returns an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	return "stratum error " + strconv.Itoa(e.Code) + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, so callers can
// write errors.Is(err, &stratum.Error{Code: stratum.CodeDuplicate}).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t != nil && t.Code == e.Code
}

// MarshalJSON encodes the error in the [code, "message", null] form every
// Stratum V1 miner understands; the third slot is a traceback nobody sends.
func (e *Error) MarshalJSON() ([]byte, error) {
	if e == nil {
		return []byte("null"), nil
	}
	return e.appendJSON(nil), nil
}

func (e *Error) appendJSON(dst []byte) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendInt(dst, int64(e.Code), 10)
	dst = append(dst, ',')
	dst = appendJSONString(dst, e.Message)
	return append(dst, ",null]"...)
}

// UnmarshalJSON accepts the standard array form, the JSON-RPC style object
// form ({"code":..,"message":..}) and a bare string, which some pools send
// instead of an array; a bare string becomes CodeOther.
func (e *Error) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return Errorf(CodeOther, "error: empty value")
	}
	switch data[0] {
	case '[':
		var parts []json.RawMessage
		if err := json.Unmarshal(data, &parts); err != nil {
			return Errorf(CodeOther, "error: %v", err)
		}
		if len(parts) < 2 {
			return Errorf(CodeOther, "error: want [code, message, ...], got %d elements", len(parts))
		}
		code, err := parseErrorCode(parts[0])
		if err != nil {
			return err
		}
		var msg string
		if !isNull(parts[1]) {
			if err := json.Unmarshal(parts[1], &msg); err != nil {
				return Errorf(CodeOther, "error: message is not a string")
			}
		}
		*e = Error{Code: code, Message: msg}
		return nil
	case '{':
		var obj struct {
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
		}
		if err := json.Unmarshal(data, &obj); err != nil {
			return Errorf(CodeOther, "error: %v", err)
		}
		code := CodeOther
		if len(obj.Code) > 0 && !isNull(obj.Code) {
			c, err := parseErrorCode(obj.Code)
			if err != nil {
				return err
			}
			code = c
		}
		*e = Error{Code: code, Message: obj.Message}
		return nil
	case '"':
		var msg string
		if err := json.Unmarshal(data, &msg); err != nil {
			return Errorf(CodeOther, "error: %v", err)
		}
		*e = Error{Code: CodeOther, Message: msg}
		return nil
	}
	return Errorf(CodeOther, "error: want an array or object")
}

func parseErrorCode(raw json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, Errorf(CodeOther, "error: code is not a number")
	}
	c, err := strconv.ParseInt(n.String(), 10, 32)
	if err != nil {
		return 0, Errorf(CodeOther, "error: code is not an integer")
	}
	return int(c), nil
}

func isNull(raw []byte) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
