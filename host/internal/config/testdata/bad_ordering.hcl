kernel {
  rank_overrides = {
    ip_destroy = "PSEUDO/ANY"
  }
  tie_order {
    init = {
      "PROTO_DOMAIN/SECOND" = ["inet:vnet_inet_init", "inet:vnet_inet_init"]
      "PROTO_DOMAIN/NEVER"  = ["a:b", "c:d"]
      "PROTO_DOMAIN/THIRD"  = ["inet:ip_destroy"]
    }
  }
  faults = {
    "if_gif:vnet_gif_init" = "explode"
  }
}
