# The kernel block's ordering experiments, as `kldsim explore` prints
# its reproducers.
kernel {
  rank_overrides = {
    "inet:ip_destroy" = "PSEUDO/ANY"
  }
  tie_order {
    init = {
      "PROTO_DOMAIN/SECOND" = ["inet6:vnet_inet6_init", "inet:vnet_inet_init"]
    }
    uninit = {
      "PROTO_DOMAIN/THIRD"  = ["inet:ip_destroy", "inet6:ip6_destroy"]
      "PROTO_DOMAIN/SECOND" = ["inet:inet_pr_destroy", "inet6:inet6_pr_destroy"]
    }
  }
  faults = {
    "if_gif:vnet_gif_init" = "error"
    "ipfw:MOD_LOAD"        = "crash"
  }
}

module "if_gif" {}
module "ipfw" {}
