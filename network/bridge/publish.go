package bridge

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/rbox-dev/rbox/spec"
)

// The network's slirp4netns serves its API on this socket in the
// network's directory: -p from a sandbox on the network is a host
// forward of slirp4netns to the sandbox's address, which the network's
// namespace routes to the bridge.
const apiSocket = "slirp.sock"

// slirpAPI sends one request to slirp4netns's API and returns its
// "return" object.
func slirpAPI(dir string, req any) (map[string]any, error) {
	c, err := net.DialTimeout("unix", filepath.Join(dir, apiSocket), 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	_ = c.(*net.UnixConn).CloseWrite()
	var rep struct {
		Return map[string]any `json:"return"`
		Error  *struct {
			Desc string `json:"desc"`
		} `json:"error"`
	}
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return nil, err
	}
	if rep.Error != nil {
		return nil, fmt.Errorf("%s", rep.Error.Desc)
	}
	return rep.Return, nil
}

// publish forwards ps from the host to address a; it returns the forwards'
// ids, to remove them with unpublish. On failure nothing stays.
func publish(dir string, a netip.Addr, ps []spec.Port) ([]float64, error) {
	var ids []float64
	for _, p := range ps {
		ret, err := slirpAPI(dir, map[string]any{"execute": "add_hostfwd", "arguments": map[string]any{
			"proto": p.Proto, "host_addr": p.HostIP, "host_port": p.HostPort,
			"guest_addr": a.String(), "guest_port": p.ChildPort,
		}})
		if err != nil {
			unpublish(dir, ids)
			return nil, fmt.Errorf("publish %s: %v", net.JoinHostPort(p.HostIP, fmt.Sprint(p.HostPort))+"/"+p.Proto, err)
		}
		id, _ := ret["id"].(float64)
		ids = append(ids, id)
	}
	return ids, nil
}

// unpublish removes host forwards.
func unpublish(dir string, ids []float64) {
	for _, id := range ids {
		_, _ = slirpAPI(dir, map[string]any{"execute": "remove_hostfwd", "arguments": map[string]any{"id": id}})
	}
}
