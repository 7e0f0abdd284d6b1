package netlink

import (
	"errors"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	tests := []struct {
		addr        string
		auth, insec bool
		wantErr     error
	}{
		{"127.0.0.1:7000", false, false, nil},
		{"127.1.2.3:7000", false, false, nil},
		{"[::1]:7000", false, false, nil},
		{"localhost:7000", false, false, nil},
		{"10.0.0.2:7000", false, false, ErrInsecure},
		{":7000", false, false, ErrInsecure},
		{"example.com:7000", false, false, ErrInsecure},
		{"10.0.0.2:7000", true, false, nil},
		{":7000", false, true, nil},
		{"nonsense", false, false, nil}, // checked below
	}
	for _, tt := range tests {
		err := CheckAddress(tt.addr, tt.auth, tt.insec)
		if tt.addr == "nonsense" {
			if err == nil {
				t.Errorf("CheckAddress(%q) accepted it", tt.addr)
			}
			continue
		}
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("CheckAddress(%q, auth %v, insecure %v) = %v, want %v", tt.addr, tt.auth, tt.insec, err, tt.wantErr)
		}
	}
	mustContain(t, CheckAddress(":7000", false, false), "every interface is not a loopback address")
}
