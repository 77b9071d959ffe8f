// Field order in every struct is wire order (the spec's tables).

package stratum2

import "fmt"

// Message is any Common or Mining Protocol message this package knows.
// Encode appends the payload (no frame header); Decode parses one. Byte
// slices a decoded message holds alias the payload.
type Message interface {
	MsgType() uint8
	Encode(b []byte) ([]byte, error)
	Decode(payload []byte) error
}

// Message types (the spec's current table, Common and Mining Protocol).
const (
	MsgSetupConnection                  uint8 = 0x00
	MsgSetupConnectionSuccess           uint8 = 0x01
	MsgSetupConnectionError             uint8 = 0x02
	MsgChannelEndpointChanged           uint8 = 0x03
	MsgReconnect                        uint8 = 0x04
	MsgOpenStandardMiningChannel        uint8 = 0x10
	MsgOpenStandardMiningChannelSuccess uint8 = 0x11
	MsgOpenMiningChannelError           uint8 = 0x12
	MsgOpenExtendedMiningChannel        uint8 = 0x13
	MsgOpenExtendedMiningChannelSuccess uint8 = 0x14
	MsgNewMiningJob                     uint8 = 0x15
	MsgUpdateChannel                    uint8 = 0x16
	MsgUpdateChannelError               uint8 = 0x17
	MsgCloseChannel                     uint8 = 0x18
	MsgSetExtranoncePrefix              uint8 = 0x19
	MsgSubmitSharesStandard             uint8 = 0x1a
	MsgSubmitSharesExtended             uint8 = 0x1b
	MsgSubmitSharesSuccess              uint8 = 0x1c
	MsgSubmitSharesError                uint8 = 0x1d
	MsgNewExtendedMiningJob             uint8 = 0x1f
	MsgSetNewPrevHash                   uint8 = 0x20
	MsgSetTarget                        uint8 = 0x21
	MsgSetGroupChannel                  uint8 = 0x25
)

// channelBit lists the types sent with ChannelMsgBit set.
var channelBit = [256]bool{
	MsgChannelEndpointChanged: true,
	MsgNewMiningJob:           true,
	MsgUpdateChannel:          true,
	MsgUpdateChannelError:     true,
	MsgCloseChannel:           true,
	MsgSetExtranoncePrefix:    true,
	MsgSubmitSharesStandard:   true,
	MsgSubmitSharesExtended:   true,
	MsgSubmitSharesSuccess:    true,
	MsgSubmitSharesError:      true,
	MsgNewExtendedMiningJob:   true,
	MsgSetNewPrevHash:         true,
	MsgSetTarget:              true,
}

// extensionFor is the extension_type a message of this type is sent with:
// extension 0 (core protocol) with the channel bit from the table.
func extensionFor(t uint8) uint16 {
	if channelBit[t] {
		return ChannelMsgBit
	}
	return 0
}

// NewMessage returns an empty message of type t, or nil if the type is not a
// Common or Mining Protocol message this package implements.
func NewMessage(t uint8) Message {
	switch t {
	case MsgSetupConnection:
		return new(SetupConnection)
	case MsgSetupConnectionSuccess:
		return new(SetupConnectionSuccess)
	case MsgSetupConnectionError:
		return new(SetupConnectionError)
	case MsgChannelEndpointChanged:
		return new(ChannelEndpointChanged)
	case MsgReconnect:
		return new(Reconnect)
	case MsgOpenStandardMiningChannel:
		return new(OpenStandardMiningChannel)
	case MsgOpenStandardMiningChannelSuccess:
		return new(OpenStandardMiningChannelSuccess)
	case MsgOpenMiningChannelError:
		return new(OpenMiningChannelError)
	case MsgOpenExtendedMiningChannel:
		return new(OpenExtendedMiningChannel)
	case MsgOpenExtendedMiningChannelSuccess:
		return new(OpenExtendedMiningChannelSuccess)
	case MsgNewMiningJob:
		return new(NewMiningJob)
	case MsgUpdateChannel:
		return new(UpdateChannel)
	case MsgUpdateChannelError:
		return new(UpdateChannelError)
	case MsgCloseChannel:
		return new(CloseChannel)
	case MsgSetExtranoncePrefix:
		return new(SetExtranoncePrefix)
	case MsgSubmitSharesStandard:
		return new(SubmitSharesStandard)
	case MsgSubmitSharesExtended:
		return new(SubmitSharesExtended)
	case MsgSubmitSharesSuccess:
		return new(SubmitSharesSuccess)
	case MsgSubmitSharesError:
		return new(SubmitSharesError)
	case MsgNewExtendedMiningJob:
		return new(NewExtendedMiningJob)
	case MsgSetNewPrevHash:
		return new(SetNewPrevHash)
	case MsgSetTarget:
		return new(SetTarget)
	case MsgSetGroupChannel:
		return new(SetGroupChannel)
	}
	return nil
}

// ErrUnknownMessage is returned by DecodeFrame for a type it does not know.
var ErrUnknownMessage = fmt.Errorf("stratum2: unknown message type")

// DecodeFrame decodes a core-protocol frame into a new message.
func DecodeFrame(f Frame) (Message, error) {
	if f.Extension() != 0 {
		return nil, fmt.Errorf("%w: extension 0x%04x", ErrUnknownMessage, f.Extension())
	}
	m := NewMessage(f.MsgType)
	if m == nil {
		return nil, fmt.Errorf("%w: 0x%02x", ErrUnknownMessage, f.MsgType)
	}
	if err := m.Decode(f.Payload); err != nil {
		return nil, err
	}
	return m, nil
}

// SetupConnection opens the connection and names the sub-protocol.
type SetupConnection struct {
	Protocol        uint8
	MinVersion      uint16
	MaxVersion      uint16
	Flags           uint32
	EndpointHost    string
	EndpointPort    uint16
	Vendor          string
	HardwareVersion string
	Firmware        string
	DeviceID        string
}

// MsgType returns MsgSetupConnection.
func (*SetupConnection) MsgType() uint8 { return MsgSetupConnection }

// Encode appends the payload.
func (m *SetupConnection) Encode(b []byte) ([]byte, error) {
	if err := checkLen("EndpointHost", len(m.EndpointHost), maxB0255); err != nil {
		return b, err
	}
	if err := checkLen("Vendor", len(m.Vendor), maxB0255); err != nil {
		return b, err
	}
	if err := checkLen("HardwareVersion", len(m.HardwareVersion), maxB0255); err != nil {
		return b, err
	}
	if err := checkLen("Firmware", len(m.Firmware), maxB0255); err != nil {
		return b, err
	}
	if err := checkLen("DeviceID", len(m.DeviceID), maxB0255); err != nil {
		return b, err
	}
	b = appendU8(b, m.Protocol)
	b = appendU16(b, m.MinVersion)
	b = appendU16(b, m.MaxVersion)
	b = appendU32(b, m.Flags)
	b = appendBytes(b, 1, []byte(m.EndpointHost))
	b = appendU16(b, m.EndpointPort)
	b = appendBytes(b, 1, []byte(m.Vendor))
	b = appendBytes(b, 1, []byte(m.HardwareVersion))
	b = appendBytes(b, 1, []byte(m.Firmware))
	b = appendBytes(b, 1, []byte(m.DeviceID))
	return b, nil
}

// Decode parses a payload into m.
func (m *SetupConnection) Decode(p []byte) error {
	r := reader{b: p}
	m.Protocol = r.u8()
	m.MinVersion = r.u16()
	m.MaxVersion = r.u16()
	m.Flags = r.u32()
	m.EndpointHost = r.str()
	m.EndpointPort = r.u16()
	m.Vendor = r.str()
	m.HardwareVersion = r.str()
	m.Firmware = r.str()
	m.DeviceID = r.str()
	return r.done()
}

// SetupConnectionSuccess accepts SetupConnection.
type SetupConnectionSuccess struct {
	UsedVersion uint16
	Flags       uint32
}

// MsgType returns MsgSetupConnectionSuccess.
func (*SetupConnectionSuccess) MsgType() uint8 { return MsgSetupConnectionSuccess }

// Encode appends the payload.
func (m *SetupConnectionSuccess) Encode(b []byte) ([]byte, error) {
	b = appendU16(b, m.UsedVersion)
	b = appendU32(b, m.Flags)
	return b, nil
}

// Decode parses a payload into m.
func (m *SetupConnectionSuccess) Decode(p []byte) error {
	r := reader{b: p}
	m.UsedVersion = r.u16()
	m.Flags = r.u32()
	return r.done()
}

// SetupConnectionError refuses SetupConnection; Flags lists the unsupported ones.
type SetupConnectionError struct {
	Flags     uint32
	ErrorCode string
}

// MsgType returns MsgSetupConnectionError.
func (*SetupConnectionError) MsgType() uint8 { return MsgSetupConnectionError }

// Encode appends the payload.
func (m *SetupConnectionError) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ErrorCode", len(m.ErrorCode), maxB0255); err != nil {
		return b, err
	}
	b = appendU32(b, m.Flags)
	b = appendBytes(b, 1, []byte(m.ErrorCode))
	return b, nil
}

// Decode parses a payload into m.
func (m *SetupConnectionError) Decode(p []byte) error {
	r := reader{b: p}
	m.Flags = r.u32()
	m.ErrorCode = r.str()
	return r.done()
}

// ChannelEndpointChanged tells the client a channel's upstream endpoint changed.
type ChannelEndpointChanged struct {
	ChannelID uint32
}

// MsgType returns MsgChannelEndpointChanged.
func (*ChannelEndpointChanged) MsgType() uint8 { return MsgChannelEndpointChanged }

// Encode appends the payload.
func (m *ChannelEndpointChanged) Encode(b []byte) ([]byte, error) {
	b = appendU32(b, m.ChannelID)
	return b, nil
}

// Decode parses a payload into m.
func (m *ChannelEndpointChanged) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	return r.done()
}

// Reconnect asks the client to reconnect elsewhere (empty host: same host).
type Reconnect struct {
	NewHost string
	NewPort uint16
}

// MsgType returns MsgReconnect.
func (*Reconnect) MsgType() uint8 { return MsgReconnect }

// Encode appends the payload.
func (m *Reconnect) Encode(b []byte) ([]byte, error) {
	if err := checkLen("NewHost", len(m.NewHost), maxB0255); err != nil {
		return b, err
	}
	b = appendBytes(b, 1, []byte(m.NewHost))
	b = appendU16(b, m.NewPort)
	return b, nil
}

// Decode parses a payload into m.
func (m *Reconnect) Decode(p []byte) error {
	r := reader{b: p}
	m.NewHost = r.str()
	m.NewPort = r.u16()
	return r.done()
}

// OpenStandardMiningChannel requests a standard (header-only) channel.
type OpenStandardMiningChannel struct {
	RequestID       uint32
	UserIdentity    string
	NominalHashRate float32
	MaxTarget       U256
}

// MsgType returns MsgOpenStandardMiningChannel.
func (*OpenStandardMiningChannel) MsgType() uint8 { return MsgOpenStandardMiningChannel }

// Encode appends the payload.
func (m *OpenStandardMiningChannel) Encode(b []byte) ([]byte, error) {
	if err := checkLen("UserIdentity", len(m.UserIdentity), maxB0255); err != nil {
		return b, err
	}
	b = appendU32(b, m.RequestID)
	b = appendBytes(b, 1, []byte(m.UserIdentity))
	b = appendF32(b, m.NominalHashRate)
	b = appendU256(b, &m.MaxTarget)
	return b, nil
}

// Decode parses a payload into m.
func (m *OpenStandardMiningChannel) Decode(p []byte) error {
	r := reader{b: p}
	m.RequestID = r.u32()
	m.UserIdentity = r.str()
	m.NominalHashRate = r.f32()
	r.u256(&m.MaxTarget)
	return r.done()
}

// OpenStandardMiningChannelSuccess opens a standard channel.
type OpenStandardMiningChannelSuccess struct {
	RequestID        uint32
	ChannelID        uint32
	Target           U256
	ExtranoncePrefix []byte
	GroupChannelID   uint32
}

// MsgType returns MsgOpenStandardMiningChannelSuccess.
func (*OpenStandardMiningChannelSuccess) MsgType() uint8 { return MsgOpenStandardMiningChannelSuccess }

// Encode appends the payload.
func (m *OpenStandardMiningChannelSuccess) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ExtranoncePrefix", len(m.ExtranoncePrefix), maxB032); err != nil {
		return b, err
	}
	b = appendU32(b, m.RequestID)
	b = appendU32(b, m.ChannelID)
	b = appendU256(b, &m.Target)
	b = appendBytes(b, 1, m.ExtranoncePrefix)
	b = appendU32(b, m.GroupChannelID)
	return b, nil
}

// Decode parses a payload into m.
func (m *OpenStandardMiningChannelSuccess) Decode(p []byte) error {
	r := reader{b: p}
	m.RequestID = r.u32()
	m.ChannelID = r.u32()
	r.u256(&m.Target)
	m.ExtranoncePrefix = r.bytes(1, maxB032)
	m.GroupChannelID = r.u32()
	return r.done()
}

// OpenMiningChannelError refuses either kind of channel open (OpenStandardMiningChannel.Error and OpenExtendedMiningChannel.Error share it).
type OpenMiningChannelError struct {
	RequestID uint32
	ErrorCode string
}

// MsgType returns MsgOpenMiningChannelError.
func (*OpenMiningChannelError) MsgType() uint8 { return MsgOpenMiningChannelError }

// Encode appends the payload.
func (m *OpenMiningChannelError) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ErrorCode", len(m.ErrorCode), maxB0255); err != nil {
		return b, err
	}
	b = appendU32(b, m.RequestID)
	b = appendBytes(b, 1, []byte(m.ErrorCode))
	return b, nil
}

// Decode parses a payload into m.
func (m *OpenMiningChannelError) Decode(p []byte) error {
	r := reader{b: p}
	m.RequestID = r.u32()
	m.ErrorCode = r.str()
	return r.done()
}

// OpenExtendedMiningChannel requests an extended channel.
type OpenExtendedMiningChannel struct {
	RequestID         uint32
	UserIdentity      string
	NominalHashRate   float32
	MaxTarget         U256
	MinExtranonceSize uint16
}

// MsgType returns MsgOpenExtendedMiningChannel.
func (*OpenExtendedMiningChannel) MsgType() uint8 { return MsgOpenExtendedMiningChannel }

// Encode appends the payload.
func (m *OpenExtendedMiningChannel) Encode(b []byte) ([]byte, error) {
	if err := checkLen("UserIdentity", len(m.UserIdentity), maxB0255); err != nil {
		return b, err
	}
	b = appendU32(b, m.RequestID)
	b = appendBytes(b, 1, []byte(m.UserIdentity))
	b = appendF32(b, m.NominalHashRate)
	b = appendU256(b, &m.MaxTarget)
	b = appendU16(b, m.MinExtranonceSize)
	return b, nil
}

// Decode parses a payload into m.
func (m *OpenExtendedMiningChannel) Decode(p []byte) error {
	r := reader{b: p}
	m.RequestID = r.u32()
	m.UserIdentity = r.str()
	m.NominalHashRate = r.f32()
	r.u256(&m.MaxTarget)
	m.MinExtranonceSize = r.u16()
	return r.done()
}

// OpenExtendedMiningChannelSuccess opens an extended channel.
type OpenExtendedMiningChannelSuccess struct {
	RequestID        uint32
	ChannelID        uint32
	Target           U256
	ExtranonceSize   uint16
	ExtranoncePrefix []byte
}

// MsgType returns MsgOpenExtendedMiningChannelSuccess.
func (*OpenExtendedMiningChannelSuccess) MsgType() uint8 { return MsgOpenExtendedMiningChannelSuccess }

// Encode appends the payload.
func (m *OpenExtendedMiningChannelSuccess) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ExtranoncePrefix", len(m.ExtranoncePrefix), maxB032); err != nil {
		return b, err
	}
	b = appendU32(b, m.RequestID)
	b = appendU32(b, m.ChannelID)
	b = appendU256(b, &m.Target)
	b = appendU16(b, m.ExtranonceSize)
	b = appendBytes(b, 1, m.ExtranoncePrefix)
	return b, nil
}

// Decode parses a payload into m.
func (m *OpenExtendedMiningChannelSuccess) Decode(p []byte) error {
	r := reader{b: p}
	m.RequestID = r.u32()
	m.ChannelID = r.u32()
	r.u256(&m.Target)
	m.ExtranonceSize = r.u16()
	m.ExtranoncePrefix = r.bytes(1, maxB032)
	return r.done()
}

// NewMiningJob is a job for a standard channel; MinNTime nil means a future job.
type NewMiningJob struct {
	ChannelID  uint32
	JobID      uint32
	MinNTime   *uint32
	Version    uint32
	MerkleRoot U256
}

// MsgType returns MsgNewMiningJob.
func (*NewMiningJob) MsgType() uint8 { return MsgNewMiningJob }

// Encode appends the payload.
func (m *NewMiningJob) Encode(b []byte) ([]byte, error) {
	b = appendU32(b, m.ChannelID)
	b = appendU32(b, m.JobID)
	b = appendOptU32(b, m.MinNTime)
	b = appendU32(b, m.Version)
	b = appendU256(b, &m.MerkleRoot)
	return b, nil
}

// Decode parses a payload into m.
func (m *NewMiningJob) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.JobID = r.u32()
	var minNTime uint32
	m.MinNTime = r.optU32(&minNTime)
	m.Version = r.u32()
	r.u256(&m.MerkleRoot)
	return r.done()
}

// UpdateChannel reports a channel's new nominal hashrate and maximum target.
type UpdateChannel struct {
	ChannelID       uint32
	NominalHashRate float32
	MaximumTarget   U256
}

// MsgType returns MsgUpdateChannel.
func (*UpdateChannel) MsgType() uint8 { return MsgUpdateChannel }

// Encode appends the payload.
func (m *UpdateChannel) Encode(b []byte) ([]byte, error) {
	b = appendU32(b, m.ChannelID)
	b = appendF32(b, m.NominalHashRate)
	b = appendU256(b, &m.MaximumTarget)
	return b, nil
}

// Decode parses a payload into m.
func (m *UpdateChannel) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.NominalHashRate = r.f32()
	r.u256(&m.MaximumTarget)
	return r.done()
}

// UpdateChannelError refuses UpdateChannel.
type UpdateChannelError struct {
	ChannelID uint32
	ErrorCode string
}

// MsgType returns MsgUpdateChannelError.
func (*UpdateChannelError) MsgType() uint8 { return MsgUpdateChannelError }

// Encode appends the payload.
func (m *UpdateChannelError) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ErrorCode", len(m.ErrorCode), maxB0255); err != nil {
		return b, err
	}
	b = appendU32(b, m.ChannelID)
	b = appendBytes(b, 1, []byte(m.ErrorCode))
	return b, nil
}

// Decode parses a payload into m.
func (m *UpdateChannelError) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.ErrorCode = r.str()
	return r.done()
}

// CloseChannel closes a channel (either side).
type CloseChannel struct {
	ChannelID  uint32
	ReasonCode string
}

// MsgType returns MsgCloseChannel.
func (*CloseChannel) MsgType() uint8 { return MsgCloseChannel }

// Encode appends the payload.
func (m *CloseChannel) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ReasonCode", len(m.ReasonCode), maxB0255); err != nil {
		return b, err
	}
	b = appendU32(b, m.ChannelID)
	b = appendBytes(b, 1, []byte(m.ReasonCode))
	return b, nil
}

// Decode parses a payload into m.
func (m *CloseChannel) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.ReasonCode = r.str()
	return r.done()
}

// SetExtranoncePrefix changes a channel's extranonce prefix for later jobs.
type SetExtranoncePrefix struct {
	ChannelID        uint32
	ExtranoncePrefix []byte
}

// MsgType returns MsgSetExtranoncePrefix.
func (*SetExtranoncePrefix) MsgType() uint8 { return MsgSetExtranoncePrefix }

// Encode appends the payload.
func (m *SetExtranoncePrefix) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ExtranoncePrefix", len(m.ExtranoncePrefix), maxB032); err != nil {
		return b, err
	}
	b = appendU32(b, m.ChannelID)
	b = appendBytes(b, 1, m.ExtranoncePrefix)
	return b, nil
}

// Decode parses a payload into m.
func (m *SetExtranoncePrefix) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.ExtranoncePrefix = r.bytes(1, maxB032)
	return r.done()
}

// SubmitSharesStandard submits a share on a standard channel.
type SubmitSharesStandard struct {
	ChannelID      uint32
	SequenceNumber uint32
	JobID          uint32
	Nonce          uint32
	NTime          uint32
	Version        uint32
}

// MsgType returns MsgSubmitSharesStandard.
func (*SubmitSharesStandard) MsgType() uint8 { return MsgSubmitSharesStandard }

// Encode appends the payload.
func (m *SubmitSharesStandard) Encode(b []byte) ([]byte, error) {
	b = appendU32(b, m.ChannelID)
	b = appendU32(b, m.SequenceNumber)
	b = appendU32(b, m.JobID)
	b = appendU32(b, m.Nonce)
	b = appendU32(b, m.NTime)
	b = appendU32(b, m.Version)
	return b, nil
}

// Decode parses a payload into m.
func (m *SubmitSharesStandard) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.SequenceNumber = r.u32()
	m.JobID = r.u32()
	m.Nonce = r.u32()
	m.NTime = r.u32()
	m.Version = r.u32()
	return r.done()
}

// SubmitSharesExtended submits a share on an extended channel.
type SubmitSharesExtended struct {
	ChannelID      uint32
	SequenceNumber uint32
	JobID          uint32
	Nonce          uint32
	NTime          uint32
	Version        uint32
	Extranonce     []byte
}

// MsgType returns MsgSubmitSharesExtended.
func (*SubmitSharesExtended) MsgType() uint8 { return MsgSubmitSharesExtended }

// Encode appends the payload.
func (m *SubmitSharesExtended) Encode(b []byte) ([]byte, error) {
	if err := checkLen("Extranonce", len(m.Extranonce), maxB032); err != nil {
		return b, err
	}
	b = appendU32(b, m.ChannelID)
	b = appendU32(b, m.SequenceNumber)
	b = appendU32(b, m.JobID)
	b = appendU32(b, m.Nonce)
	b = appendU32(b, m.NTime)
	b = appendU32(b, m.Version)
	b = appendBytes(b, 1, m.Extranonce)
	return b, nil
}

// Decode parses a payload into m.
func (m *SubmitSharesExtended) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.SequenceNumber = r.u32()
	m.JobID = r.u32()
	m.Nonce = r.u32()
	m.NTime = r.u32()
	m.Version = r.u32()
	m.Extranonce = r.bytes(1, maxB032)
	return r.done()
}

// SubmitSharesSuccess acknowledges one or more shares at once.
type SubmitSharesSuccess struct {
	ChannelID               uint32
	LastSequenceNumber      uint32
	NewSubmitsAcceptedCount uint32
	NewSharesSum            uint64
}

// MsgType returns MsgSubmitSharesSuccess.
func (*SubmitSharesSuccess) MsgType() uint8 { return MsgSubmitSharesSuccess }

// Encode appends the payload.
func (m *SubmitSharesSuccess) Encode(b []byte) ([]byte, error) {
	b = appendU32(b, m.ChannelID)
	b = appendU32(b, m.LastSequenceNumber)
	b = appendU32(b, m.NewSubmitsAcceptedCount)
	b = appendU64(b, m.NewSharesSum)
	return b, nil
}

// Decode parses a payload into m.
func (m *SubmitSharesSuccess) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.LastSequenceNumber = r.u32()
	m.NewSubmitsAcceptedCount = r.u32()
	m.NewSharesSum = r.u64()
	return r.done()
}

// SubmitSharesError refuses one share.
type SubmitSharesError struct {
	ChannelID      uint32
	SequenceNumber uint32
	ErrorCode      string
}

// MsgType returns MsgSubmitSharesError.
func (*SubmitSharesError) MsgType() uint8 { return MsgSubmitSharesError }

// Encode appends the payload.
func (m *SubmitSharesError) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ErrorCode", len(m.ErrorCode), maxB0255); err != nil {
		return b, err
	}
	b = appendU32(b, m.ChannelID)
	b = appendU32(b, m.SequenceNumber)
	b = appendBytes(b, 1, []byte(m.ErrorCode))
	return b, nil
}

// Decode parses a payload into m.
func (m *SubmitSharesError) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.SequenceNumber = r.u32()
	m.ErrorCode = r.str()
	return r.done()
}

// NewExtendedMiningJob is a job for an extended or group channel; MinNTime nil means a future job.
type NewExtendedMiningJob struct {
	ChannelID             uint32
	JobID                 uint32
	MinNTime              *uint32
	Version               uint32
	VersionRollingAllowed bool
	MerklePath            []U256
	CoinbaseTxPrefix      []byte
	CoinbaseTxSuffix      []byte
}

// MsgType returns MsgNewExtendedMiningJob.
func (*NewExtendedMiningJob) MsgType() uint8 { return MsgNewExtendedMiningJob }

// Encode appends the payload.
func (m *NewExtendedMiningJob) Encode(b []byte) ([]byte, error) {
	if err := checkLen("MerklePath", len(m.MerklePath), 255); err != nil {
		return b, err
	}
	if err := checkLen("CoinbaseTxPrefix", len(m.CoinbaseTxPrefix), maxB064K); err != nil {
		return b, err
	}
	if err := checkLen("CoinbaseTxSuffix", len(m.CoinbaseTxSuffix), maxB064K); err != nil {
		return b, err
	}
	b = appendU32(b, m.ChannelID)
	b = appendU32(b, m.JobID)
	b = appendOptU32(b, m.MinNTime)
	b = appendU32(b, m.Version)
	b = appendBool(b, m.VersionRollingAllowed)
	b = append(b, byte(len(m.MerklePath)))
	for i := range m.MerklePath {
		b = appendU256(b, &m.MerklePath[i])
	}
	b = appendBytes(b, 2, m.CoinbaseTxPrefix)
	b = appendBytes(b, 2, m.CoinbaseTxSuffix)
	return b, nil
}

// Decode parses a payload into m.
func (m *NewExtendedMiningJob) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.JobID = r.u32()
	var minNTime uint32
	m.MinNTime = r.optU32(&minNTime)
	m.Version = r.u32()
	m.VersionRollingAllowed = r.boolean()
	m.MerklePath = r.seqU256()
	m.CoinbaseTxPrefix = r.bytes(2, maxB064K)
	m.CoinbaseTxSuffix = r.bytes(2, maxB064K)
	return r.done()
}

// SetNewPrevHash activates the job JobID on a new previous block; PrevHash is in block-header byte order.
type SetNewPrevHash struct {
	ChannelID uint32
	JobID     uint32
	PrevHash  U256
	MinNTime  uint32
	NBits     uint32
}

// MsgType returns MsgSetNewPrevHash.
func (*SetNewPrevHash) MsgType() uint8 { return MsgSetNewPrevHash }

// Encode appends the payload.
func (m *SetNewPrevHash) Encode(b []byte) ([]byte, error) {
	b = appendU32(b, m.ChannelID)
	b = appendU32(b, m.JobID)
	b = appendU256(b, &m.PrevHash)
	b = appendU32(b, m.MinNTime)
	b = appendU32(b, m.NBits)
	return b, nil
}

// Decode parses a payload into m.
func (m *SetNewPrevHash) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	m.JobID = r.u32()
	r.u256(&m.PrevHash)
	m.MinNTime = r.u32()
	m.NBits = r.u32()
	return r.done()
}

// SetTarget sets a channel's maximum target.
type SetTarget struct {
	ChannelID     uint32
	MaximumTarget U256
}

// MsgType returns MsgSetTarget.
func (*SetTarget) MsgType() uint8 { return MsgSetTarget }

// Encode appends the payload.
func (m *SetTarget) Encode(b []byte) ([]byte, error) {
	b = appendU32(b, m.ChannelID)
	b = appendU256(b, &m.MaximumTarget)
	return b, nil
}

// Decode parses a payload into m.
func (m *SetTarget) Decode(p []byte) error {
	r := reader{b: p}
	m.ChannelID = r.u32()
	r.u256(&m.MaximumTarget)
	return r.done()
}

// SetGroupChannel puts standard channels into a group channel.
type SetGroupChannel struct {
	GroupChannelID uint32
	ChannelIDs     []uint32
}

// MsgType returns MsgSetGroupChannel.
func (*SetGroupChannel) MsgType() uint8 { return MsgSetGroupChannel }

// Encode appends the payload.
func (m *SetGroupChannel) Encode(b []byte) ([]byte, error) {
	if err := checkLen("ChannelIDs", len(m.ChannelIDs), 65535); err != nil {
		return b, err
	}
	b = appendU32(b, m.GroupChannelID)
	b = appendU16(b, uint16(len(m.ChannelIDs)))
	for _, v := range m.ChannelIDs {
		b = appendU32(b, v)
	}
	return b, nil
}

// Decode parses a payload into m.
func (m *SetGroupChannel) Decode(p []byte) error {
	r := reader{b: p}
	m.GroupChannelID = r.u32()
	m.ChannelIDs = r.seqU32()
	return r.done()
}
