package render

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// The Chrome trace-event format (the JSON that ui.perfetto.dev and
// chrome://tracing open): "X" complete slices, "i" instants, "s"/"f"
// flow arrows, "M" metadata naming processes and threads. Times are in
// microseconds.
type traceEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   float64        `json:"ts"`
	Dur  *float64       `json:"dur,omitempty"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	S    string         `json:"s,omitempty"`  // instant scope
	ID   uint64         `json:"id,omitempty"` // flow id
	Bp   string         `json:"bp,omitempty"` // flow binding point
	Args map[string]any `json:"args,omitempty"`
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// hostPid is the kernel's process: a track (thread) per lane.
const hostPid = 1

// track is a (pid, tid) pair.
type track struct{ pid, tid int }

// perfettoTracks assigns the tracks: the host's lanes, then a process
// per linker file (the base system's builtins share "kernel"), a thread
// per module. It returns the metadata events naming them.
func perfettoTracks(run *Run) (lanes map[string]track, mods map[string]track, meta []traceEvent) {
	lanes, mods = map[string]track{}, map[string]track{}
	name := func(ph, what string, pid, tid int, v string) traceEvent {
		return traceEvent{Name: what, Ph: ph, Pid: pid, Tid: tid, Args: map[string]any{"name": v}}
	}
	sortIdx := func(what string, pid, tid, i int) traceEvent {
		return traceEvent{Name: what, Ph: "M", Pid: pid, Tid: tid, Args: map[string]any{"sort_index": i}}
	}
	meta = append(meta, name("M", "process_name", hostPid, 0, "kldsim kernel (host)"), sortIdx("process_sort_index", hostPid, 0, 0))
	for i, l := range run.Lanes() {
		lanes[l] = track{hostPid, i + 1}
		label := "vnet " + l
		if l == GlobalLane {
			label = "global: SYSINITs, module events"
		}
		meta = append(meta, name("M", "thread_name", hostPid, i+1, label), sortIdx("thread_sort_index", hostPid, i+1, i))
	}
	files := map[string]int{}
	for _, m := range run.ModuleNames() {
		f := run.fileOf(m)
		if f == "" {
			f = m // unknown: a process of its own
		}
		pid, ok := files[f]
		if !ok {
			pid = hostPid + 1 + len(files)
			files[f] = pid
			label := f + " (plugin process)"
			if f == BaseFile {
				label = "kernel file (builtin modules, in the host)"
			}
			meta = append(meta, name("M", "process_name", pid, 0, label), sortIdx("process_sort_index", pid, 0, pid))
		}
		tid := 1
		for _, t := range mods {
			if t.pid == pid {
				tid++
			}
		}
		mods[m] = track{pid, tid}
		meta = append(meta, name("M", "thread_name", pid, tid, m), sortIdx("thread_sort_index", pid, tid, tid))
	}
	return lanes, mods, meta
}

// WritePerfetto writes the run as Chrome trace-event JSON, which
// ui.perfetto.dev and chrome://tracing open. The kernel is one process
// with a track per VNET (and one for global work); each linker file is a
// process with a track per module. Every entry, module event and
// interface event is a slice on its VNET's track and again on its
// module's track, joined by a flow arrow from the host's call to the
// module's work; KPI calls are instants on the module's track, witness
// reports and faults instants on the VNET's. Every event's args carry
// its seq, step and the rest of the trace record.
func WritePerfetto(w io.Writer, run *Run) error {
	lanes, mods, meta := perfettoTracks(run)
	events := meta
	reportOf := map[uint64]Report{}
	for _, r := range run.Witness {
		if r.Seq != 0 {
			reportOf[r.Seq] = r
		}
	}
	for _, ev := range run.Trace {
		args := map[string]any{"seq": ev.Seq, "step": ev.Step}
		set := func(k, v string) {
			if v != "" {
				args[k] = v
			}
		}
		set("module", ev.Module)
		set("entry", ev.Entry)
		set("vnet", ev.Vnet)
		set("kind", ev.EntryKind)
		set("detail", ev.Detail)
		set("error", ev.Error)
		if ev.HasRank() {
			args["rank"] = ev.Rank.String()
		}
		ts := micros(ev.Start)
		host := lanes[lane(ev)]
		mod, hasMod := mods[ev.Module]
		switch {
		case ev.Lasts():
			d := micros(ev.Duration)
			cat := ev.Kind
			if ev.Failed() {
				cat += ",failed"
			}
			events = append(events, traceEvent{Name: ev.Name(), Cat: cat, Ph: "X", Ts: ts, Dur: &d, Pid: host.pid, Tid: host.tid, Args: args})
			if hasMod {
				events = append(events,
					traceEvent{Name: "call", Cat: "call", Ph: "s", Ts: ts, Pid: host.pid, Tid: host.tid, ID: ev.Seq},
					traceEvent{Name: ev.Entry, Cat: cat, Ph: "X", Ts: ts, Dur: &d, Pid: mod.pid, Tid: mod.tid, Args: args},
					traceEvent{Name: "call", Cat: "call", Ph: "f", Bp: "e", Ts: ts, Pid: mod.pid, Tid: mod.tid, ID: ev.Seq})
			}
		case ev.Kind == KindKPI && hasMod:
			name := ev.Detail
			if name == "" {
				name = ev.Entry
			}
			events = append(events, traceEvent{Name: name, Cat: ev.Kind, Ph: "i", S: "t", Ts: ts, Pid: mod.pid, Tid: mod.tid, Args: args})
		default: // witness reports, faults, kernel paths: the VNET's
			name := ev.Kind + ": " + ev.Detail
			if ev.Detail == "" {
				name = ev.Kind + ": " + ev.Name()
			}
			if r, ok := reportOf[ev.Seq]; ok {
				args["cites"] = r.Cites
			}
			if t, ok := lanes[lane(ev)]; ok {
				host = t
			} else {
				host = track{hostPid, 0}
			}
			events = append(events, traceEvent{Name: name, Cat: ev.Kind, Ph: "i", S: "t", Ts: ts, Pid: host.pid, Tid: host.tid, Args: args})
		}
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("{\"displayTimeUnit\": \"ns\",\n")
	other, err := json.Marshal(map[string]any{"config": run.Config, "verdict": run.VerdictLine(), "schema": "kldsim trace -format perfetto"})
	if err != nil {
		return err
	}
	fmt.Fprintf(bw, "\"otherData\": %s,\n\"traceEvents\": [\n", other)
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		bw.Write(b)
		if i < len(events)-1 {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}
