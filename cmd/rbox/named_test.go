package main

import (
	"slices"
	"testing"

	"github.com/alecthomas/kong"
)

// `rbox [FLAGS] -- COMMAND` runs COMMAND even when it is named like one of
// rbox's commands; `rbox COMMAND ...` is that command.
func TestRunAfterDashes(t *testing.T) {
	var cli CLI
	parser, err := kong.New(&cli)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want []string }{
		{[]string{"--", "ps"}, []string{"run", "--", "ps"}},
		{[]string{"--bind", "a:/b", "--", "rm", "-rf", "/b"}, []string{"run", "--bind", "a:/b", "--", "rm", "-rf", "/b"}},
		{[]string{"exec", "db", "--", "ps"}, []string{"exec", "db", "--", "ps"}},
		{[]string{"run", "--", "check"}, []string{"run", "--", "check"}},
		{[]string{"ps", "--all"}, []string{"ps", "--all"}},
		{[]string{"check"}, []string{"check"}},
	} {
		if got := runAfterDashes(parser, c.in); !slices.Equal(got, c.want) {
			t.Errorf("%v: got %v, want %v", c.in, got, c.want)
		}
	}
}
