package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
	mangokong "github.com/alecthomas/mango-kong"
	"github.com/muesli/roff"
)

// conventions are the flags and commands every command-line tool is
// expected to have: --version, logging levels, a config file with
// profiles, completion scripts and a man page.
type conventions struct {
	ShowVersion kong.VersionFlag `name:"version" help:"Print rbox's version and exit."`
	LogLevel    string           `name:"log-level" enum:"debug,info,notice,warn,error" default:"notice" env:"RBOX_LOG_LEVEL" help:"What rbox itself reports on stderr: debug, info, notice (the default: warnings and what rbox chose for you, such as a published host port), warn or error."`
	Debug       bool             `help:"Same as --log-level debug."`
	Quiet       bool             `short:"q" help:"Only errors: same as --log-level error."`
	Profile     string           `placeholder:"NAME" env:"RBOX_PROFILE" help:"Apply the profile NAME of the config file (a set of run flags)."`

	Completion CompletionCmd `cmd:"" help:"Print a shell completion script: bash, zsh or fish."`
	Man        ManCmd        `cmd:"" help:"Print rbox's man page (roff)."`
}

// AfterApply sets up rbox's own logging once the flags are known.
func (c *conventions) AfterApply() error {
	setupLogging(os.Stderr, c.level())
	return nil
}

func (c *conventions) level() slog.Level {
	switch {
	case c.Debug:
		return slog.LevelDebug
	case c.Quiet:
		return slog.LevelError
	}
	if c.LogLevel == "notice" {
		return levelNotice
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return levelNotice
	}
	return l
}

// levelNotice is for what rbox chose on the caller's behalf: shown by
// default, hidden by -q and --log-level warn.
const levelNotice = slog.LevelWarn - 1

// setupLogging makes slog print "rbox: LEVEL: message key=value" lines,
// the form rbox's messages always had, at level and above.
func setupLogging(w io.Writer, level slog.Level) {
	slog.SetDefault(slog.New(&lineHandler{w: w, level: level}))
}

// lineHandler is a slog.Handler for a person reading stderr: one short
// line per record, no time stamp.
type lineHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch r.Level {
	case levelNotice:
		fmt.Fprintf(&b, "rbox: %s", r.Message)
	case slog.LevelWarn:
		fmt.Fprintf(&b, "rbox: warning: %s", r.Message)
	default:
		fmt.Fprintf(&b, "rbox: %s: %s", strings.ToLower(r.Level.String()), r.Message)
	}
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b.WriteByte('\n')
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &lineHandler{w: h.w, level: h.level, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }

// ManCmd prints the man page generated from the command-line model.
type ManCmd struct{}

// Run prints the page.
func (ManCmd) Run(k *kong.Kong) error {
	_, err := fmt.Fprint(k.Stdout, mangokong.NewManPage(1, k.Model).Build(roff.NewDocument()))
	return err
}

// CompletionCmd prints a completion script generated from the model.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

// Help is the command's long help.
func (CompletionCmd) Help() string {
	return `Install with: rbox completion bash > ~/.local/share/bash-completion/completions/rbox, rbox completion zsh > ~/.zfunc/_rbox (with fpath+=~/.zfunc), rbox completion fish > ~/.config/fish/completions/rbox.fish. just install puts all three in place.`
}

// Run prints the script.
func (c CompletionCmd) Run(k *kong.Kong) error {
	words := completionWords(k.Model.Node)
	var script string
	switch c.Shell {
	case "bash":
		script = bashCompletion(words)
	case "zsh":
		script = zshCompletion(words)
	case "fish":
		script = fishCompletion(k.Model.Node)
	}
	_, err := io.WriteString(k.Stdout, script)
	return err
}

// cmdWords are, per command path ("" for the top level and the default run
// command), the words that complete after it.
type cmdWords map[string][]string

func completionWords(root *kong.Node) cmdWords {
	w := cmdWords{}
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		var list []string
		for _, group := range n.AllFlags(true) {
			for _, f := range group {
				list = append(list, "--"+f.Name)
				if f.Short != 0 {
					list = append(list, "-"+string(f.Short))
				}
			}
		}
		for _, ch := range n.Children {
			if ch.Hidden {
				continue
			}
			if path == "" {
				list = append(list, ch.Name)
			}
			walk(ch, strings.TrimSpace(path+" "+ch.Name))
		}
		for _, p := range n.Positional {
			list = append(list, p.EnumSlice()...)
		}
		sort.Strings(list)
		w[path] = dedupe(append(w[path], list...))
	}
	walk(root, "")
	// The run command is the default: its flags complete at the top level.
	w[""] = dedupe(append(w[""], append(w["run"], "help")...))
	return w
}

func dedupe(list []string) []string {
	sort.Strings(list)
	out := list[:0]
	for i, s := range list {
		if i == 0 || s != list[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func (w cmdWords) paths() []string {
	var p []string
	for k := range w {
		p = append(p, k)
	}
	sort.Strings(p)
	return p
}

// bashCompletion completes the words of the deepest command seen, and
// files (and commands after --) everywhere else.
func bashCompletion(w cmdWords) string {
	var b strings.Builder
	b.WriteString("# bash completion for rbox (generated by rbox completion bash)\n_rbox() {\n")
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} path= i\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tcase ${COMP_WORDS[i]} in\n")
	b.WriteString("\t\t--) COMPREPLY=($(compgen -c -- \"$cur\")); return ;;\n")
	b.WriteString("\t\t-*) ;;\n\t\t*) case \"${path:+$path }${COMP_WORDS[i]}\" in\n")
	for _, p := range w.paths() {
		if p != "" {
			fmt.Fprintf(&b, "\t\t\t%q) path=%q ;;\n", p, p)
		}
	}
	b.WriteString("\t\t\tesac ;;\n\t\tesac\n\tdone\n\tlocal words\n\tcase $path in\n")
	for _, p := range w.paths() {
		fmt.Fprintf(&b, "\t%q) words=%q ;;\n", p, strings.Join(w[p], " "))
	}
	b.WriteString("\tesac\n\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\") $(compgen -f -- \"$cur\"))\n}\ncomplete -F _rbox rbox\n")
	return b.String()
}

// zshCompletion uses bash's script through bashcompinit: one logic for both.
func zshCompletion(w cmdWords) string {
	return "#compdef rbox\n# zsh completion for rbox (generated by rbox completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n" +
		strings.Replace(bashCompletion(w), "# bash completion for rbox (generated by rbox completion bash)\n", "", 1)
}

// fishCompletion lists each command's flags with their help.
func fishCompletion(root *kong.Node) string {
	var b strings.Builder
	b.WriteString("# fish completion for rbox (generated by rbox completion fish)\ncomplete -c rbox -f\n")
	var cmds []string
	for _, ch := range root.Children {
		if !ch.Hidden {
			cmds = append(cmds, ch.Name)
			fmt.Fprintf(&b, "complete -c rbox -n __fish_use_subcommand -a %s -d %s\n", ch.Name, fishQuote(ch.Help))
		}
	}
	var walk func(n *kong.Node, cond string)
	walk = func(n *kong.Node, cond string) {
		for _, f := range n.Flags {
			if f.Hidden {
				continue
			}
			fmt.Fprintf(&b, "complete -c rbox -n %s -l %s", fishQuote(cond), f.Name)
			if f.Short != 0 {
				fmt.Fprintf(&b, " -s %c", f.Short)
			}
			if !f.IsBool() {
				b.WriteString(" -r -F")
			}
			fmt.Fprintf(&b, " -d %s\n", fishQuote(firstSentence(f.Help)))
		}
		for _, ch := range n.Children {
			if !ch.Hidden {
				walk(ch, "__fish_seen_subcommand_from "+ch.Name)
			}
		}
	}
	walk(root, "true")
	for _, ch := range root.Children {
		if ch.Name == "run" {
			// The default command's flags apply before any subcommand.
			walk(ch, "not __fish_seen_subcommand_from "+strings.Join(cmds, " "))
		}
	}
	return b.String()
}

func fishQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}

// helpArgs turns `rbox help [COMMAND...]` into the arguments that print
// that help; ok is false for any other command line.
func helpArgs(args []string) ([]string, bool) {
	if len(args) == 0 || args[0] != "help" {
		return nil, false
	}
	return append(append([]string{}, args[1:]...), "--help"), true
}

// mistypedCommand reports the subcommand a bare first word was likely meant
// to be. Words that are not a subcommand run as the sandbox's command
// (run is the default command), so a word is taken as a typo only when it
// is within one edit of a subcommand's name (two for names of seven
// letters or more) and no program of
// that name is on the caller's PATH; `rbox -- WORD` always runs WORD.
func mistypedCommand(args []string, commands []string) (string, bool) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", false
	}
	word := args[0]
	for _, c := range commands {
		if c == word {
			return "", false
		}
	}
	if strings.Contains(word, "/") {
		return "", false
	}
	best, bestDist := "", 3
	for _, c := range commands {
		limit := 1
		if len(c) >= 7 {
			limit = 2
		}
		if d := editDistance(word, c); d <= limit && d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return "", false
	}
	if _, err := exec.LookPath(word); err == nil {
		return "", false
	}
	return best, true
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of neighbours (imgae) cost one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// commandNames are the visible subcommands of the model.
func commandNames(root *kong.Node) []string {
	var out []string
	for _, ch := range root.Children {
		if !ch.Hidden {
			out = append(out, ch.Name)
			out = append(out, ch.Aliases...)
		}
	}
	return out
}
