package image

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Progress receives reports from long operations. Bars are named by id.
type Progress interface {
	// Start begins a bar; total may be 0 when unknown.
	Start(id, label string, total int64)
	Add(id string, n int64)
	// Done ends a bar; status is a short word ("done", "exists", ...).
	Done(id, status string)
	// Note prints a line of its own.
	Note(msg string)
}

type nopProgress struct{}

func (nopProgress) Start(string, string, int64) {}
func (nopProgress) Add(string, int64)           {}
func (nopProgress) Done(string, string)         {}
func (nopProgress) Note(string)                 {}

// NewProgress returns progress bars redrawn in place when f is a terminal,
// and plain lines (one when a step starts, one when it ends) otherwise.
func NewProgress(f *os.File) Progress {
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
		return &termProgress{w: f, index: map[string]int{}}
	}
	return &lineProgress{w: f, bars: map[string]*bar{}}
}

type bar struct {
	label string
	total int64
	n     int64
	done  string
}

// lineProgress is for logs: no control characters.
type lineProgress struct {
	mu   sync.Mutex
	w    io.Writer
	bars map[string]*bar
}

func (p *lineProgress) Start(id, label string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bars[id] = &bar{label: label, total: total}
	if total > 0 {
		fmt.Fprintf(p.w, "%s (%s)\n", label, HumanSize(total))
	} else {
		fmt.Fprintf(p.w, "%s\n", label)
	}
}

func (p *lineProgress) Add(id string, n int64) {
	p.mu.Lock()
	if b := p.bars[id]; b != nil {
		b.n += n
	}
	p.mu.Unlock()
}

func (p *lineProgress) Done(id, status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.bars[id]
	if b == nil {
		return
	}
	delete(p.bars, id)
	fmt.Fprintf(p.w, "%s: %s (%s)\n", b.label, status, HumanSize(b.n))
}

func (p *lineProgress) Note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, msg)
}

// termProgress keeps one line per bar and redraws them in place.
type termProgress struct {
	mu    sync.Mutex
	w     io.Writer
	bars  []*bar
	index map[string]int
	drawn int // lines drawn last time
	last  time.Time
}

func (p *termProgress) Start(id, label string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index[id] = len(p.bars)
	p.bars = append(p.bars, &bar{label: label, total: total})
	p.draw(true)
}

func (p *termProgress) Add(id string, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.index[id]; ok {
		p.bars[i].n += n
	}
	p.draw(false)
}

func (p *termProgress) Done(id, status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.index[id]; ok {
		p.bars[i].done = status
	}
	p.draw(true)
}

func (p *termProgress) Note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Print above the bars: clear them, print, redraw.
	p.clear()
	fmt.Fprintln(p.w, msg)
	p.drawn = 0
	p.draw(true)
}

func (p *termProgress) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.drawn)
	}
}

func (p *termProgress) draw(force bool) {
	now := time.Now()
	if !force && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, br := range p.bars {
		b.WriteString("\r\x1b[K")
		b.WriteString(renderBar(br))
		b.WriteByte('\n')
	}
	p.drawn = len(p.bars)
	io.WriteString(p.w, b.String())
}

func renderBar(b *bar) string {
	label := b.label
	if len(label) > 40 {
		label = label[:39] + "…"
	}
	if b.done != "" {
		return fmt.Sprintf("%-40s %s %s", label, b.done, HumanSize(b.n))
	}
	if b.total <= 0 {
		return fmt.Sprintf("%-40s %s", label, HumanSize(b.n))
	}
	const width = 30
	frac := float64(b.n) / float64(b.total)
	if frac > 1 {
		frac = 1
	}
	fill := int(frac * width)
	return fmt.Sprintf("%-40s [%s%s] %s / %s", label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		HumanSize(b.n), HumanSize(b.total))
}

// HumanSize renders a byte count as B, KiB, MiB or GiB.
func HumanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
