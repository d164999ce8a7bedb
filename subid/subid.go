// Package subid reads the subordinate id files /etc/subuid and /etc/subgid
// (shadow-utils format, see subuid(5)), which say which ranges of host ids a
// user may map into a user namespace through newuidmap and newgidmap.
package subid

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Default file paths.
const (
	SubUIDPath = "/etc/subuid"
	SubGIDPath = "/etc/subgid"
)

// maxLineLen bounds one line. bufio.Scanner's default (64 KiB) would reject
// a line of exactly 64 KiB, and the files are small, so a generous bound
// costs nothing while still refusing to buffer an endless line.
const maxLineLen = 1 << 20

// Range is the ids Start, Start+1, ..., Start+Count-1.
type Range struct{ Start, Count uint32 }

// Entry is one owner:start:count line; Line is its 1-based line number.
type Entry struct {
	Owner string
	Range Range
	Line  int
}

// ParseError is a malformed line, printed as "file:line: reason".
type ParseError struct {
	File   string
	Line   int
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// Parse reads a subordinate id file; name is used in error messages.
// It stops at the first malformed line.
func Parse(r io.Reader, name string) ([]Entry, error) {
	var entries []Entry
	err := scan(r, name, func(e Entry, _ bool) { entries = append(entries, e) })
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// Lookup returns the ranges of the user with the given name or numeric id
// (both forms match, as shadow-utils does), in file order. A missing file
// gives no ranges and no error: having no subordinate ids is a normal setup.
func Lookup(path, user string, id uint32) ([]Range, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()

	var ranges []Range
	var crlf *ParseError
	err = scan(f, path, func(e Entry, cr bool) {
		if e.Owner == user || ownerIsID(e.Owner, id) {
			ranges = append(ranges, e.Range)
			// newuidmap and newgidmap take the carriage return as part of
			// the count, and so ignore the line.
			if cr && crlf == nil {
				crlf = &ParseError{File: path, Line: e.Line, Reason: fmt.Sprintf(
					"ends in a carriage return (CRLF line endings), so newuidmap and newgidmap ignore it: as root, run sed -i 's/\\r$//' %s", path)}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if crlf != nil {
		return nil, crlf
	}
	return ranges, nil
}

// Merge returns rs sorted, with overlapping and adjacent ranges joined:
// the kernel refuses a map whose extents overlap, and newuidmap accepts a
// mapping that spans several of the caller's lines.
func Merge(rs []Range) []Range {
	sorted := append([]Range{}, rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	var out []Range
	for _, r := range sorted {
		if n := len(out); n > 0 && uint64(r.Start) <= uint64(out[n-1].Start)+uint64(out[n-1].Count) {
			last := &out[n-1]
			end := max(uint64(last.Start)+uint64(last.Count), uint64(r.Start)+uint64(r.Count))
			last.Count = uint32(min(end-uint64(last.Start), 1<<32-1))
			continue
		}
		out = append(out, r)
	}
	return out
}

// FreeRange is a range of count ids to give a user: past every range the
// files at paths give out (and 100000 at least), on a 65536 boundary, so it
// overlaps no other user's.
func FreeRange(count uint32, paths ...string) Range {
	end := uint64(100000)
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		entries, _ := Parse(f, p)
		f.Close()
		for _, e := range entries {
			end = max(end, uint64(e.Range.Start)+uint64(e.Range.Count))
		}
	}
	if end > 100000 {
		end = (end + 65535) / 65536 * 65536
	}
	return Range{Start: uint32(min(end, 1<<32-1-uint64(count))), Count: count}
}

// Total returns the number of ids in rs. It is a uint64 because a full set
// of ranges may hold 2^32 ids.
func Total(rs []Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += uint64(r.Count)
	}
	return n
}

func ownerIsID(owner string, id uint32) bool {
	if owner == "" || owner[0] < '0' || owner[0] > '9' {
		return false // cheap reject: most owners are names
	}
	n, err := strconv.ParseUint(owner, 10, 32)
	return err == nil && uint32(n) == id
}

// scan calls fn for each entry of r in order, saying whether its line ends
// in a carriage return; Lookup uses it directly so it keeps only the
// matching ranges.
func scan(r io.Reader, name string, fn func(e Entry, crlf bool)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLineLen)
	sc.Split(scanRawLines)
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Text()
		text := strings.TrimSpace(raw)
		if text == "" || text[0] == '#' {
			continue
		}
		e, reason := parseLine(text)
		if reason != "" {
			return &ParseError{File: name, Line: line, Reason: reason}
		}
		e.Line = line
		fn(e, strings.HasSuffix(raw, "\r"))
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &ParseError{File: name, Line: line + 1,
				Reason: fmt.Sprintf("line is too long (limit %d bytes with its newline)", maxLineLen)}
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// scanRawLines is bufio.ScanLines keeping a carriage return before the
// newline, for scan to see.
func scanRawLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// parseLine parses a trimmed, non-comment line; a non-empty reason means it
// is malformed.
func parseLine(text string) (Entry, string) {
	owner, rest, ok1 := strings.Cut(text, ":")
	startStr, countStr, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || strings.Contains(countStr, ":") {
		return Entry{}, fmt.Sprintf("want 3 fields owner:start:count, got %d", strings.Count(text, ":")+1)
	}
	if owner == "" {
		return Entry{}, "empty owner"
	}
	// "alice :100000:65536" would otherwise silently never match alice.
	if strings.ContainsFunc(owner, unicode.IsSpace) {
		return Entry{}, fmt.Sprintf("owner %q contains white space", owner)
	}
	start, reason := parseID("start", startStr)
	if reason != "" {
		return Entry{}, reason
	}
	count, reason := parseID("count", countStr)
	if reason != "" {
		return Entry{}, reason
	}
	if count == 0 {
		return Entry{}, "count is 0"
	}
	if uint64(start)+uint64(count) > 1<<32 {
		return Entry{}, fmt.Sprintf("range %d+%d goes past 2^32", start, count)
	}
	return Entry{Owner: owner, Range: Range{Start: start, Count: count}}, ""
}

func parseID(field, s string) (uint32, string) {
	n, err := strconv.ParseUint(s, 10, 32)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Sprintf("%s %q is out of range (max %d)", field, s, uint32(1<<32-1))
	}
	if err != nil {
		return 0, fmt.Sprintf("%s %q is not a number", field, s)
	}
	return uint32(n), ""
}
