package bridge

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rbox-dev/rbox/network/internal/proc"
	"github.com/rbox-dev/rbox/network/slirp4netns"
)

// outbound is the network's slirp4netns, kept running by the supervisor.
// When it dies (killed, or crashed), its tap and every host forward of -p
// go with it: the supervisor starts another on the holder's namespace (it
// makes the tap again, with the same address and route) and has the holder
// add the forwards of the sandboxes still on the network again. A helper
// that keeps dying (more than maxDeaths within deathWindow), or cannot be
// started again, leaves the network broken: the reason goes to
// network.json, where `network ls` shows it and `--net NAME` refuses it.
type outbound struct {
	dir    string
	config slirp4netns.Config

	mu      sync.Mutex
	helper  *proc.Helper
	exitW   *os.File
	stopped bool
	deaths  []time.Time
}

const (
	maxDeaths   = 3
	deathWindow = time.Minute
)

// startOutbound starts the network's slirp4netns for the holder pid.
func startOutbound(dir string, pid int) (*outbound, error) {
	o := &outbound{dir: dir, config: slirp4netns.Config{PID: pid, Device: "tap0", MTU: mtu, APISocket: filepath.Join(dir, apiSocket), Log: os.Stderr}}
	if err := o.start(); err != nil {
		return nil, err
	}
	go o.watch()
	return o, nil
}

// start runs a slirp4netns (o.mu held, or before watch runs).
func (o *outbound) start() error {
	// A dead slirp4netns leaves its API socket; a new one fails to bind
	// over it.
	_ = os.Remove(o.config.APISocket)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, exitW, err := slirp4netns.Start(ctx, o.config)
	if err != nil {
		return err
	}
	o.helper, o.exitW = h, exitW
	return nil
}

// watch restarts slirp4netns each time it dies, until stop, or until the
// network is marked broken.
func (o *outbound) watch() {
	for {
		o.mu.Lock()
		h := o.helper
		o.mu.Unlock()
		<-h.Done
		o.mu.Lock()
		if o.stopped {
			o.mu.Unlock()
			return
		}
		o.exitW.Close()
		died := fmt.Sprintf("slirp4netns (pid %d) died (%v)", h.PID(), h.WaitError())
		now := time.Now()
		o.deaths = append(o.deaths, now)
		for len(o.deaths) > 0 && now.Sub(o.deaths[0]) > deathWindow {
			o.deaths = o.deaths[1:]
		}
		if len(o.deaths) > maxDeaths {
			o.mu.Unlock()
			o.broken(fmt.Sprintf("its slirp4netns died %d times within a minute, the last time %v", len(o.deaths), h.WaitError()))
			return
		}
		log.Printf("rbox network: %s, starting another", died)
		err := o.start()
		o.mu.Unlock()
		if err != nil {
			o.broken(fmt.Sprintf("its %s and could not be started again: %v", died, err))
			return
		}
		o.record(nil)
		if _, err := call(filepath.Dir(o.dir), filepath.Base(o.dir), request{Op: "republish"}); err != nil {
			log.Printf("rbox network: publish the sandboxes' ports again: %v", err)
		}
	}
}

// broken records why the network no longer reaches the outside.
func (o *outbound) broken(why string) {
	log.Printf("rbox network: broken: %s", why)
	o.record(&why)
}

// record writes the helper's pid, the number of restarts, and, when why is
// not nil, the reason the network is broken, to network.json.
func (o *outbound) record(why *string) {
	root, name := filepath.Dir(o.dir), filepath.Base(o.dir)
	n, err := Read(root, name)
	if err != nil {
		log.Printf("rbox network: %v", err)
		return
	}
	o.mu.Lock()
	if why != nil {
		n.Broken = *why
	} else {
		n.HelperRestarts++
	}
	o.mu.Unlock()
	if err := write(o.dir, n); err != nil {
		log.Printf("rbox network: %v", err)
	}
}

// stop ends slirp4netns for good.
func (o *outbound) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
	o.helper.Kill()
	o.exitW.Close()
}
