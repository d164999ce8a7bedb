package subid

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Entry
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{
			name: "by name",
			in:   "alice:100000:65536\n",
			want: []Entry{{"alice", Range{100000, 65536}, 1}},
		},
		{
			name: "by uid",
			in:   "1000:100000:65536\n",
			want: []Entry{{"1000", Range{100000, 65536}, 1}},
		},
		{
			name: "several ranges per user in file order",
			in:   "alice:300000:10\nbob:100000:65536\nalice:200000:5\n",
			want: []Entry{
				{"alice", Range{300000, 10}, 1},
				{"bob", Range{100000, 65536}, 2},
				{"alice", Range{200000, 5}, 3},
			},
		},
		{
			name: "comments, blank lines, whitespace",
			in:   "# header\n\n   \n\t# indented comment\n  alice:100000:65536  \r\n\tbob:165536:65536\t\nno-newline:1:1",
			want: []Entry{
				{"alice", Range{100000, 65536}, 5},
				{"bob", Range{165536, 65536}, 6},
				{"no-newline", Range{1, 1}, 7},
			},
		},
		{
			name: "range ending exactly at 2^32",
			in:   "alice:4294967295:1\nbob:0:4294967295\n",
			want: []Entry{
				{"alice", Range{4294967295, 1}, 1},
				{"bob", Range{0, 4294967295}, 2},
			},
		},
		{name: "too few fields", in: "# c\nalice:100000\n", wantErr: "f:2: want 3 fields owner:start:count, got 2"},
		{name: "one field", in: "alice\n", wantErr: "f:1: want 3 fields owner:start:count, got 1"},
		{name: "too many fields", in: "alice:1:2:3\n", wantErr: "f:1: want 3 fields owner:start:count, got 4"},
		{name: "empty owner", in: "a:1:1\n:100000:65536\n", wantErr: "f:2: empty owner"},
		{name: "space in owner", in: "alice :1:1\n", wantErr: `f:1: owner "alice " contains white space`},
		{name: "start not a number", in: "alice:abc:1\n", wantErr: `f:1: start "abc" is not a number`},
		{name: "start empty", in: "alice::1\n", wantErr: `f:1: start "" is not a number`},
		{name: "start negative", in: "alice:-1:1\n", wantErr: `f:1: start "-1" is not a number`},
		{name: "start with plus", in: "alice:+1:1\n", wantErr: `f:1: start "+1" is not a number`},
		{name: "count not a number", in: "\n\nalice:1:x\n", wantErr: `f:3: count "x" is not a number`},
		{name: "count with inner space", in: "alice:1: 2\n", wantErr: `f:1: count " 2" is not a number`},
		{name: "trailing comment", in: "alice:1:2 # x\n", wantErr: `f:1: count "2 # x" is not a number`},
		{name: "count zero", in: "alice:100000:0\n", wantErr: "f:1: count is 0"},
		{name: "start past uint32", in: "alice:4294967296:1\n", wantErr: `f:1: start "4294967296" is out of range (max 4294967295)`},
		{name: "count past uint32", in: "alice:0:99999999999999999999\n", wantErr: `f:1: count "99999999999999999999" is out of range (max 4294967295)`},
		{name: "overflow past 2^32", in: "alice:4294967295:2\n", wantErr: "f:1: range 4294967295+2 goes past 2^32"},
		{name: "overflow big", in: "alice:4000000000:300000000\n", wantErr: "f:1: range 4000000000+300000000 goes past 2^32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in), "f")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("err is %T, want *ParseError", err)
				}
				if got != nil {
					t.Errorf("entries = %v alongside an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseLongLines(t *testing.T) {
	// A 64 KiB owner is past bufio.Scanner's default limit.
	long := strings.Repeat("a", 64<<10)
	got, err := Parse(strings.NewReader("# "+long+"\n"+long+":1:2\n"), "f")
	if err != nil {
		t.Fatalf("64 KiB line: %v", err)
	}
	if len(got) != 1 || got[0].Owner != long || got[0].Line != 2 {
		t.Fatalf("64 KiB line: got %d entries", len(got))
	}

	// Past the limit it must fail loudly, naming the line.
	huge := strings.Repeat("b", maxLineLen)
	_, err = Parse(strings.NewReader("a:1:1\n"+huge+":1:1\n"), "f")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != "f" || pe.Line != 2 || !strings.Contains(pe.Reason, "too long") {
		t.Fatalf("huge line: err = %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestParseReadError(t *testing.T) {
	_, err := Parse(failingReader{}, "f")
	if err == nil || err.Error() != "f: boom" {
		t.Fatalf("err = %v, want f: boom", err)
	}
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "subuid")
	content := "# ranges\n" +
		"alice:100000:65536\n" +
		"bob:165536:65536\n" +
		"1000:300000:10\n" +
		"01000:400000:1\n" + // numeric owners compare as numbers
		"alice:500000:5\n" +
		"2000:600000:7\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		user string
		id   uint32
		want []Range
	}{
		{"name and uid, file order", "alice", 1000, []Range{{100000, 65536}, {300000, 10}, {400000, 1}, {500000, 5}}},
		{"name only", "bob", 1001, []Range{{165536, 65536}}},
		{"uid only", "carol", 2000, []Range{{600000, 7}}},
		{"neither", "dave", 3000, nil},
		{"empty name matches no owner", "", 3000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Lookup(path, tt.user, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLookupMissingFile(t *testing.T) {
	got, err := Lookup(filepath.Join(t.TempDir(), "nope"), "alice", 1000)
	if err != nil || got != nil {
		t.Fatalf("got %v, %v; want no ranges and no error", got, err)
	}
}

func TestLookupMalformed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subgid")
	if err := os.WriteFile(path, []byte("alice:1:1\n\nbob:1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Lookup(path, "alice", 1000)
	if want := path + ":3: count is 0"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestLookupUnreadable(t *testing.T) {
	// A directory opens but cannot be read: a real error, not "missing".
	if _, err := Lookup(t.TempDir(), "alice", 1000); err == nil {
		t.Fatal("want an error reading a directory")
	}
}

func TestTotal(t *testing.T) {
	if got := Total(nil); got != 0 {
		t.Errorf("Total(nil) = %d", got)
	}
	rs := []Range{{0, 4294967295}, {100, 1}, {200, 10}}
	if got, want := Total(rs), uint64(4294967295+1+10); got != want {
		t.Errorf("Total = %d, want %d", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"alice:100000:65536\n",
		"1000:100000:65536\nalice:200000:5\n",
		"# c\n\n  bob:1:1  \r\n\t#x\n",
		"alice:4294967295:1\n",
		"alice:4294967295:2\n",
		"alice:0:0\n",
		"alice:1\n",
		"a:b:c:d\n",
		":1:1\n",
		"alice :1:1\n",
		"a:01:+2\n",
		"a#b:1:1\n",
		"\xff:1:1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := Parse(strings.NewReader(in), "fuzz")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, want *ParseError", err, err)
			}
			return
		}
		var b strings.Builder
		for _, e := range entries {
			if e.Range.Count == 0 {
				t.Fatalf("entry %+v has count 0", e)
			}
			if uint64(e.Range.Start)+uint64(e.Range.Count) > 1<<32 {
				t.Fatalf("entry %+v goes past 2^32", e)
			}
			fmt.Fprintf(&b, "%s:%d:%d\n", e.Owner, e.Range.Start, e.Range.Count)
		}
		again, err := Parse(strings.NewReader(b.String()), "again")
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b.String(), err)
		}
		if len(again) != len(entries) {
			t.Fatalf("re-parse gave %d entries, want %d", len(again), len(entries))
		}
		for i := range entries {
			if again[i].Owner != entries[i].Owner || again[i].Range != entries[i].Range {
				t.Fatalf("entry %d: re-parse gave %+v, want %+v", i, again[i], entries[i])
			}
		}
	})
}

func TestMergeOverlappingRanges(t *testing.T) {
	got := Merge([]Range{{200000, 65536}, {165536, 65536}, {500000, 10}, {500010, 5}, {1, 1}})
	want := []Range{{1, 1}, {165536, 200000 + 65536 - 165536}, {500000, 15}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Merge = %v, want %v", got, want)
	}
}

func TestLookupNamesCRLF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(path, []byte("bob:300000:65536\r\nalice:100000:65536\r\n"), 0o644)
	_, err := Lookup(path, "alice", 1000)
	if err == nil || !strings.Contains(err.Error(), path+":2: ends in a carriage return") || !strings.Contains(err.Error(), "sed -i") {
		t.Errorf("CRLF line: %v", err)
	}
	os.WriteFile(path, []byte("bob:300000:65536\r\nalice:100000:65536\n"), 0o644)
	if rs, err := Lookup(path, "alice", 1000); err != nil || len(rs) != 1 {
		t.Errorf("another user's CRLF line: %v, %v", rs, err)
	}
}

func TestFreeRange(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	if r := FreeRange(65536, a, b); r != (Range{100000, 65536}) {
		t.Errorf("no files: %v", r)
	}
	os.WriteFile(a, []byte("x:100000:65536\ny:165536:65536\n"), 0o644)
	os.WriteFile(b, []byte("x:100000:300000\n"), 0o644)
	if r := FreeRange(65536, a, b); r != (Range{458752, 65536}) {
		t.Errorf("past the ranges in use: %v", r)
	}
}
