package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpandPublish(t *testing.T) {
	next := 40000
	pick := func(proto, ip string) (int, error) { next++; return next, nil }
	for _, c := range []struct {
		raw  string
		want []string
	}{
		{"8080:80", []string{"8080:80/tcp"}},
		{"8000-8002:9000-9002/udp", []string{"8000:9000/udp", "8001:9001/udp", "8002:9002/udp"}},
		{"0.0.0.0:8080:80", []string{"0.0.0.0:8080:80/tcp"}},
		{"[::1]:8080:80", []string{"[::1]:8080:80/tcp"}},
		{"80", []string{"40001:80/tcp"}},
		{"127.0.0.1::80", []string{"127.0.0.1:40002:80/tcp"}},
		{"53-54/udp", []string{"40003:53/udp", "40004:54/udp"}},
	} {
		got, _, err := expandPublish(c.raw, pick)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %q, %v; want %q", c.raw, got, err, c.want)
		}
	}
	_, picked, _ := expandPublish("80", pick)
	if !reflect.DeepEqual(picked, []string{"127.0.0.1:40005 -> 80/tcp"}) {
		t.Errorf("picked %q", picked)
	}
	for raw, says := range map[string]string{
		"8000-8001:80": "2 host ports for 1 sandbox ports",
		"0:80":         "not a port",
		"80-70":        "not a range",
		"1-2000":       "more than 1000",
		"[::1:8080:80": "brackets",
		"8080:http":    "sandbox port",
		"8080-x:80-81": "host port",
	} {
		if _, _, err := expandPublish(raw, pick); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want one saying %q", raw, err, says)
		}
	}
	if p, err := freePort("tcp", "127.0.0.1"); err != nil || p == 0 {
		t.Errorf("freePort: %d, %v", p, err)
	}
}
