// Package kldtest is the loader's test module: small, but it exercises
// every call of the wire contract, and it can be told to crash or hang in
// a chosen entry, to test what the host does about it.
//
// Faults come from the environment the plugin inherits from its host:
//
//	KLDTEST_FAULT=crash:vnet_kldtest_init@j2   SIGKILL itself in that entry in j2
//	KLDTEST_FAULT=hang:vnet_kldtest_init       never return from that entry (any VNET)
//	KLDTEST_FAULT=stop:MOD_QUIESCE             SIGSTOP itself there, as a debugger would
//	KLDTEST_FAULT=exit:MOD_LOAD                os.Exit(3) in that module event
//	KLDTEST_FAULT=fail:control                 return an error (EBUSY) there
//	KLDTEST_FAULT=decl                         the file declares kldtest twice
//	KLDTEST_FAULT=attach:vnet_kldtest_init@j1  clone ktest99 first thing in that entry
//
// The points: each entry by name, each module event (MOD_LOAD,
// MOD_QUIESCE, MOD_UNLOAD), ifnet_departure_event, clone_create,
// clone_destroy and control. A fault fires at the end of the call, after
// it allocated its objects, so the witness has something the dead module
// left behind; "attach" fires first, before the entry takes anything.
// (Declare is faulted by the declfault plugin.)
package kldtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kldsim/kldsim/sdk"
)

// Names of the modules and entries.
const (
	Name       = "kldtest"
	AuxName    = "kldtest_aux"
	BaseName   = "kldtest_base"
	Cloner     = "ktest"
	EntryInit  = "vnet_kldtest_init"
	EntryFini  = "vnet_kldtest_uninit"
	FaultEnv   = "KLDTEST_FAULT"
	globalName = "kldtest global"
)

type vstate struct {
	lock, softc sdk.ObjID
}

type state struct {
	mu         sync.Mutex
	global     sdk.ObjID
	vnets      map[string]*vstate
	ifs        map[string]map[string]bool // vnet -> cloned interfaces
	departures []string
}

// New returns the kldtest module, with its own empty state.
func New() *sdk.Module {
	s := &state{vnets: map[string]*vstate{}, ifs: map[string]map[string]bool{}}
	return sdk.DeclareModule(Name, sdk.SubPseudo, sdk.OrderAny).
		Version(1).
		Depend(BaseName, 1, 2, 3).
		Sysinit("kldtest_init", sdk.SubPseudo, sdk.OrderAny, s.init).
		Sysuninit("kldtest_uninit", sdk.SubPseudo, sdk.OrderAny, s.uninit).
		VnetSysinit(EntryInit, sdk.SubProtoIfAttachDomain, sdk.OrderAny, s.vnetInit).
		VnetSysuninit(EntryFini, sdk.SubPseudo, sdk.OrderAny, s.vnetUninit).
		Cloner(Cloner, sdk.Cloner{Create: s.create, Destroy: func(ctx context.Context, k sdk.KPI, ifname string) error {
			return errors.Join(s.destroy(ctx, k, ifname), fault("clone_destroy", k))
		}}).
		OnIfnet(sdk.IfDeparture, s.departure).
		EventHandler(func(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error {
			return fault(what.String(), k)
		}).
		OnControl(s.control)
}

// File returns the modules the kldtest binary carries: kldtest and
// kldtest_aux, or (KLDTEST_FAULT=decl) an invalid file that Serve refuses.
func File() []*sdk.Module {
	if os.Getenv(FaultEnv) == "decl" {
		return []*sdk.Module{New(), New()}
	}
	return []*sdk.Module{New(), NewAux()}
}

// NewAux returns a second module of the same file, ranked just before
// kldtest's own VNET entries.
func NewAux() *sdk.Module {
	var mu sync.Mutex
	mem := map[string]sdk.ObjID{}
	return sdk.DeclareModule(AuxName, sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_aux_init", sdk.SubProtoIfAttachDomain, sdk.OrderAny-1, func(ctx context.Context, k sdk.KPI) error {
			id, err := k.Malloc(ctx, "aux softc")
			mu.Lock()
			mem[k.Vnet()] = id
			mu.Unlock()
			return err
		}).
		VnetSysuninit("vnet_aux_uninit", sdk.SubPseudo, sdk.OrderAny-1, func(ctx context.Context, k sdk.KPI) error {
			mu.Lock()
			id := mem[k.Vnet()]
			delete(mem, k.Vnet())
			mu.Unlock()
			return k.Free(ctx, id)
		})
}

// NewBase returns kldtest_base, version 2, which kldtest depends on and
// which lives in a file of its own.
func NewBase() *sdk.Module {
	var mu sync.Mutex
	mem := map[string]sdk.ObjID{}
	return sdk.DeclareModule(BaseName, sdk.SubPseudo, sdk.OrderFirst).
		Version(2).
		VnetSysinit("vnet_base_init", sdk.SubProtoBegin, sdk.OrderFirst, func(ctx context.Context, k sdk.KPI) error {
			id, err := k.Malloc(ctx, "base softc")
			mu.Lock()
			mem[k.Vnet()] = id
			mu.Unlock()
			return err
		}).
		VnetSysuninit("vnet_base_uninit", sdk.SubProtoBegin, sdk.OrderFirst, func(ctx context.Context, k sdk.KPI) error {
			mu.Lock()
			id := mem[k.Vnet()]
			delete(mem, k.Vnet())
			mu.Unlock()
			return k.Free(ctx, id)
		})
}

// faultFor is the kind of fault KLDTEST_FAULT names for this entry (and
// VNET), or "".
func faultFor(entry string, k sdk.KPI) string {
	spec := os.Getenv(FaultEnv)
	if spec == "" {
		return ""
	}
	kind, target, _ := strings.Cut(spec, ":")
	name, vnet, scoped := strings.Cut(target, "@")
	if name != entry || (scoped && k != nil && vnet != k.Vnet()) {
		return ""
	}
	return kind
}

// fault acts on KLDTEST_FAULT if it names this entry (and VNET).
func fault(entry string, k sdk.KPI) error {
	switch faultFor(entry, k) {
	case "crash":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is on its way
	case "exit":
		os.Exit(3)
	case "hang":
		time.Sleep(time.Hour) // deaf to ctx, as a wedged module is
	case "stop":
		// The stop lands asynchronously: without the wait, the answer
		// could leave before it.
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		time.Sleep(time.Hour)
	case "fail":
		if k != nil {
			return fmt.Errorf("%s: %s: injected failure: %w", k.Module(), entry, syscall.EBUSY)
		}
		return fmt.Errorf("%s: injected failure: %w", entry, syscall.EBUSY)
	}
	return nil
}

func (s *state) init(ctx context.Context, k sdk.KPI) error {
	id, err := k.Malloc(ctx, globalName)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.global = id
	s.mu.Unlock()
	return fault("kldtest_init", k)
}

func (s *state) uninit(ctx context.Context, k sdk.KPI) error {
	s.mu.Lock()
	id := s.global
	s.global = 0
	s.mu.Unlock()
	return k.Free(ctx, id)
}

// vnetInit takes a lock and some memory in curvnet, and uses the lock.
func (s *state) vnetInit(ctx context.Context, k sdk.KPI) error {
	if faultFor(EntryInit, k) == "attach" {
		if err := s.create(ctx, k, "ktest99"); err != nil {
			return err
		}
	}
	lock, err := k.LockInit(ctx, "kldtest lock")
	if err != nil {
		return err
	}
	softc, err := k.Malloc(ctx, "kldtest softc")
	if err != nil {
		return errors.Join(err, k.LockDestroy(ctx, lock))
	}
	if err := errors.Join(k.Lock(ctx, lock), k.Use(ctx, softc), k.Unlock(ctx, lock)); err != nil {
		return err
	}
	s.mu.Lock()
	s.vnets[k.Vnet()] = &vstate{lock: lock, softc: softc}
	s.mu.Unlock()
	return fault(EntryInit, k)
}

// vnetUninit destroys the VNET's clones, then frees what vnetInit took.
func (s *state) vnetUninit(ctx context.Context, k sdk.KPI) error {
	var errs []error
	for _, ifname := range s.clones(k.Vnet()) {
		errs = append(errs, s.destroy(ctx, k, ifname))
	}
	s.mu.Lock()
	vs := s.vnets[k.Vnet()]
	delete(s.vnets, k.Vnet())
	s.mu.Unlock()
	if vs != nil {
		errs = append(errs, k.Free(ctx, vs.softc), k.LockDestroy(ctx, vs.lock))
	}
	errs = append(errs, fault(EntryFini, k))
	return errors.Join(errs...)
}

func (s *state) clones(vnet string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.ifs[vnet] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *state) create(ctx context.Context, k sdk.KPI, ifname string) error {
	info, err := k.IfAttach(ctx, ifname, Cloner)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.ifs[k.Vnet()] == nil {
		s.ifs[k.Vnet()] = map[string]bool{}
	}
	s.ifs[k.Vnet()][info.Name] = true
	s.mu.Unlock()
	return fault("clone_create", k)
}

func (s *state) destroy(ctx context.Context, k sdk.KPI, ifname string) error {
	s.mu.Lock()
	delete(s.ifs[k.Vnet()], ifname)
	s.mu.Unlock()
	return k.IfDetach(ctx, ifname)
}

// departure records what the kernel said about each departure: the typed
// path, vmove and purge_ulp fields that crossed the wire.
func (s *state) departure(_ context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	s.mu.Lock()
	s.departures = append(s.departures, fmt.Sprintf("%s@%s path=%v vmove=%t purgeulp=%t",
		ev.Ifname, k.Vnet(), ev.Path, ev.Vmove(), ev.PurgeULP()))
	s.mu.Unlock()
	return fault(ev.Kind.String(), k)
}

// control answers "ping", "departures", "errno N" (fails with errno N),
// and "iflist".
func (s *state) control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	if err := fault("control", k); err != nil {
		return "", err
	}
	if len(req.Args) == 0 {
		return "", fmt.Errorf("kldtest: no command: %w", syscall.EINVAL)
	}
	switch req.Args[0] {
	case "ping":
		return "pong from " + k.Module() + " in " + k.Vnet(), nil
	case "departures":
		s.mu.Lock()
		defer s.mu.Unlock()
		return strings.Join(s.departures, "\n"), nil
	case "errno":
		var n int
		if len(req.Args) > 1 {
			fmt.Sscan(req.Args[1], &n)
		}
		return "", fmt.Errorf("kldtest: asked to fail: %w", syscall.Errno(n))
	case "iflist":
		list, err := k.IfList(ctx)
		var names []string
		for _, i := range list {
			names = append(names, i.Name)
		}
		return strings.Join(names, " "), err
	}
	return "", fmt.Errorf("kldtest: unknown command %q: %w", req.Args[0], syscall.EINVAL)
}
