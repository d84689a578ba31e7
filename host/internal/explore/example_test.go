package explore_test

import (
	"context"
	"fmt"
	"os"

	"github.com/kldsim/kldsim/host/internal/explore"
	"github.com/kldsim/kldsim/sdk"
)

// pfwatch is a scenario in which a third-party module's VNET_SYSINIT
// ties with inet's and holds inet's pfil head, and its uninit ties with
// ip_destroy, which frees it. Each entry's operations are fixed; the
// runner plays one VNET create and destroy.
type pfwatch struct{}

var ops = map[explore.EntryKey]struct {
	pass   explore.PassKind
	rank   string
	op     string
	writes bool
}{
	"inet:vnet_inet_init":         {explore.PassInit, "PROTO_DOMAIN/SECOND", "alloc", true},
	"pfwatch:vnet_pfwatch_init":   {explore.PassInit, "PROTO_DOMAIN/SECOND", "hold", true},
	"pfwatch:vnet_pfwatch_uninit": {explore.PassUninit, "PROTO_DOMAIN/THIRD", "drop", true},
	"inet:ip_destroy":             {explore.PassUninit, "PROTO_DOMAIN/THIRD", "free", true},
}

func (pfwatch) Run(ctx context.Context, v explore.Variant) (explore.Outcome, error) {
	tables := map[explore.PassKind][]explore.EntryKey{
		explore.PassInit:   {"inet:vnet_inet_init", "pfwatch:vnet_pfwatch_init"},
		explore.PassUninit: {"pfwatch:vnet_pfwatch_uninit", "inet:ip_destroy"},
	}
	var out explore.Outcome
	for _, p := range []explore.PassKind{explore.PassInit, explore.PassUninit} {
		for _, k := range tables[p] {
			r, _ := sdk.ParseRank(ops[k].rank)
			out.Entries = append(out.Entries, explore.PassEntry{Pass: p, Key: k, Module: k.Module(), File: k.Module(), Rank: r})
		}
	}
	for _, t := range v.TieOrders {
		tables[t.Pass] = t.Entries
	}
	out.Footprints = map[explore.EntryKey]explore.Footprint{}
	live, held := false, false
	for _, p := range []explore.PassKind{explore.PassInit, explore.PassUninit} {
		for _, k := range tables[p] {
			out.Footprints[k] = explore.Footprint{Writes: []string{`pfil head "inet"`}}
			switch ops[k].op {
			case "alloc":
				live = true
			case "hold":
				if !live {
					out.Findings = append(out.Findings, explore.Finding{Signature: `hold of missing pfil head "inet"`,
						Text: `pfwatch holds pfil head "inet" before inet registers it`, Entries: []explore.EntryKey{k}})
				}
				held = live
			case "drop":
				held = false
			case "free":
				if held {
					out.Findings = append(out.Findings, explore.Finding{Signature: `free of referenced pfil head "inet"`,
						Text: `ip_destroy frees pfil head "inet" that pfwatch still holds`, Entries: []explore.EntryKey{k}})
				}
				live = false
			}
		}
	}
	return out, nil
}

func ExampleExplore() {
	res, err := explore.Explore(context.Background(), pfwatch{}, explore.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	res.WriteText(os.Stdout)
	// Output:
	// explore: 2 tie groups; orders: 4 allowed, 4 run, 0 pruned
	//
	// finding 1 of 2: free of referenced pfil head "inet"
	//   ip_destroy frees pfil head "inet" that pfwatch still holds
	//   shown by 1 of 4 variants (first: variant 1)
	//   reproducer (add to the config, then `kldsim run`):
	//     kernel {
	//       tie_order {
	//         uninit = {
	//           "PROTO_DOMAIN/THIRD" = ["inet:ip_destroy", "pfwatch:vnet_pfwatch_uninit"]
	//         }
	//       }
	//     }
	//
	// finding 2 of 2: hold of missing pfil head "inet"
	//   pfwatch holds pfil head "inet" before inet registers it
	//   shown by 2 of 4 variants (first: variant 2)
	//   reproducer (add to the config, then `kldsim run`):
	//     kernel {
	//       tie_order {
	//         init = {
	//           "PROTO_DOMAIN/SECOND" = ["pfwatch:vnet_pfwatch_init", "inet:vnet_inet_init"]
	//         }
	//       }
	//     }
}
