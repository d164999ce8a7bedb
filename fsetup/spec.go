package fsetup

import (
	"os"
	"sort"

	"github.com/rbox-dev/rbox/spec"
)

// ConfigFor is the filesystem s asks for; the caller adds the generated
// Files.
func ConfigFor(s *spec.Spec) *Config {
	cfg := &Config{
		Mounts:   s.Mounts,
		NewPID:   !s.Shares(spec.NSPID),
		NewNet:   !s.Shares(spec.NSNet) || s.JoinNet != nil, // a joined one is owned by the sandbox's user namespace
		NewIPC:   !s.Shares(spec.NSIPC),
		MaskProc: !s.AllowNested || mapsHostRoot(s),
		Console:  s.TTY,
		TTYGID:   mappedGID(s.GIDMap, 5),
		Cwd:      s.Cwd,
		Driver:   s.StorageDriver,

		EmptyRoot:    s.EmptyRoot,
		CwdFallbacks: s.CwdFallbacks,
		LockFiles:    s.LockFiles,

		DisableUserns: s.DisableUserns,
		Legacy:        s.LegacyMount,
	}
	if s.EmptyRoot {
		// bwrap's --proc: covered only when the host's root is mapped.
		cfg.MaskProc = mapsHostRoot(s)
	}
	switch {
	case len(s.Layers) > 0:
		cfg.RootLowers = s.Layers
	case s.RootFS != "":
		cfg.RootLowers = []string{s.RootFS}
	}
	if s.Overlay != nil {
		cfg.Overlay, cfg.UpperDir, cfg.WorkDir = true, s.Overlay.UpperDir, s.Overlay.WorkDir
	}
	if s.Limits != nil && s.Limits.MemoryBytes > 0 {
		// Files in a tmpfs are memory no rlimit counts: each of the
		// sandbox's tmpfs mounts holds at most the memory limit.
		cfg.TmpfsSize = s.Limits.MemoryBytes
		cfg.Mounts = append([]spec.Mount{}, s.Mounts...)
		for i, m := range cfg.Mounts {
			if m.Kind == spec.MountTmpfs && (m.SizeBytes == 0 || m.SizeBytes > cfg.TmpfsSize) {
				cfg.Mounts[i].SizeBytes = cfg.TmpfsSize
			}
		}
	}
	return cfg
}

// NetworkFiles are the generated /etc files of the sandbox's network:
// etcFiles gives their contents by path for the sandbox's host name (see
// network.ChildConfig.EtcFiles); then the files the CLI generated
// (s.GeneratedFiles).
func NetworkFiles(s *spec.Spec, etcFiles func(hostname string) map[string][]byte) []File {
	name := s.Hostname
	if name == "" || s.Shares(spec.NSUTS) {
		// A new UTS namespace starts with the host's name.
		name, _ = os.Hostname()
	}
	etc := etcFiles(name)
	var files []File
	for dest, data := range etc {
		files = append(files, File{Dest: dest, Data: data})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Dest < files[j].Dest })
	for _, f := range s.GeneratedFiles {
		files = append(files, File{Dest: f.Dest, Data: f.Data})
	}
	return files
}

// mapsHostRoot reports whether the host's uid or gid 0 is mapped in the
// sandbox: when the caller is root. The host-wide files under /proc/sys
// and /proc/sysrq-trigger are root's and checked by owner alone, so root
// inside could write them even without capabilities; their read-only
// mounts must stay, even when --allow-nested would leave /proc bare for a
// nested sandbox's sake.
func mapsHostRoot(s *spec.Spec) bool {
	for _, m := range append(append([]spec.IDMap{}, s.UIDMap...), s.GIDMap...) {
		if m.Outside == 0 && m.Count > 0 {
			return true
		}
	}
	return false
}

// mappedGID returns gid when the sandbox maps it, else -1.
func mappedGID(m []spec.IDMap, gid uint32) int {
	for _, e := range m {
		if gid >= e.Inside && gid-e.Inside < e.Count {
			return int(gid)
		}
	}
	return -1
}
