# The bug the top-down teardown change fixed (FreeBSD, "Top-down VNET
# teardown", 2016).
#
# With detach_ignores_shutdown, if_detach_internal purges addresses and
# upper-layer protocol state (in_ifdetach, in6_ifdetach) even while the
# VNET is shutting down. The protocols' own VNET_SYSUNINITs
# (inet_pr_destroy, inet6_pr_destroy) have already freed that state, so
# detaching the interfaces that go later in the teardown (bridge0 at
# PSEUDO/ANY, lo0 at INIT_IF/SECOND) acquires the destroyed PCB-info locks
# of inet and inet6. The witness reports each one and
# `kldsim run configs/seed-bug.hcl` exits 1.
#
# Run it with -var buggy=false (the fix) and the same teardown is clean.

variable "buggy" {
  description = "reproduce the pre-fix detach"
  type        = bool
  default     = true
}

kernel {
  em_count = 2
  legacy {
    detach_ignores_shutdown = var.buggy
  }
}

module "if_bridge" {}

vnet "j1" {
  loan = ["em1"]
  interface "bridge0" {
    members = ["em1"]
  }
}
