package tlsreload

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseFingerprint(t *testing.T) {
	const h = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	var colon []string
	for i := 0; i < len(h); i += 2 {
		colon = append(colon, h[i:i+2])
	}
	for _, s := range []string{h, strings.ToUpper(h), "sha256:" + h, "SHA256=" + h, " " + h + "\n", strings.Join(colon, ":"), "sha256:" + strings.ToUpper(strings.Join(colon, ":"))} {
		fp, err := ParseFingerprint(s)
		if err != nil || hex.EncodeToString(fp[:]) != h {
			t.Errorf("%q: %x, %v", s, fp, err)
		}
	}
	for _, s := range []string{"", h[:62], h + "00", "zz" + h[2:], strings.Join(colon, "-"), strings.Join(colon, ":")[1:] + "f", "md5:" + h} {
		if _, err := ParseFingerprint(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	f.Add("sha256:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff")
	f.Add("sha256:")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		// What it accepts reads back the same: the plain hex form parses
		// to the same bytes.
		again, err := ParseFingerprint(hex.EncodeToString(fp[:]))
		if err != nil || again != fp {
			t.Fatalf("%q → %x, round trip %x %v", s, fp, again, err)
		}
	})
}

func TestClientConfigRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	if _, err := (ClientOptions{CAFile: dir + "/missing.pem"}).Config(); err == nil {
		t.Error("missing CA file accepted")
	}
	if _, err := (ClientOptions{Fingerprint: "abc"}).Config(); err == nil {
		t.Error("short fingerprint accepted")
	}
	cf, kf := pair(t, dir, "x")
	if _, err := (ClientOptions{CAFile: kf}).Config(); err == nil {
		t.Error("a key file taken as a CA bundle")
	}
	if c, err := (ClientOptions{CAFile: cf}).Config(); err != nil || c.RootCAs == nil || c.InsecureSkipVerify {
		t.Errorf("CA file: %+v, %v", c, err)
	}
}
