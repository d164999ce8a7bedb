package imagerun

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// LookupUser turns an image's User ("", "uid", "uid:gid", "name",
// "name:group", ...) into ids, reading names from the image's /etc/passwd
// and /etc/group through readFile. Empty means root.
func LookupUser(readFile func(path string) ([]byte, error), user string) (uid, gid uint32, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		uid = uint32(n)
		gid = uid
		// A numeric user's primary group comes from passwd when listed.
		if e, ok := findEntry(readFile, "/etc/passwd", func(f []string) bool { return len(f) > 3 && f[2] == u }); ok {
			if n, err := strconv.ParseUint(e[3], 10, 32); err == nil {
				gid = uint32(n)
			}
		}
	} else {
		e, ok := findEntry(readFile, "/etc/passwd", func(f []string) bool { return len(f) > 3 && f[0] == u })
		if !ok {
			return 0, 0, fmt.Errorf("user %q not found in the image's /etc/passwd", u)
		}
		n1, err1 := strconv.ParseUint(e[2], 10, 32)
		n2, err2 := strconv.ParseUint(e[3], 10, 32)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("bad /etc/passwd entry for %q", u)
		}
		uid, gid = uint32(n1), uint32(n2)
	}
	if hasGroup {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			gid = uint32(n)
		} else {
			e, ok := findEntry(readFile, "/etc/group", func(f []string) bool { return len(f) > 2 && f[0] == g })
			if !ok {
				return 0, 0, fmt.Errorf("group %q not found in the image's /etc/group", g)
			}
			n, err := strconv.ParseUint(e[2], 10, 32)
			if err != nil {
				return 0, 0, fmt.Errorf("bad /etc/group entry for %q", g)
			}
			gid = uint32(n)
		}
	}
	return uid, gid, nil
}

func findEntry(readFile func(string) ([]byte, error), file string, match func([]string) bool) ([]string, bool) {
	b, err := readFile(file)
	if err != nil {
		return nil, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if match(fields) {
			return fields, true
		}
	}
	return nil, false
}
