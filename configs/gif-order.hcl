# The gif rank experiment: a configured gif tunnel holds an encap handle
# that belongs to inet/inet6, so vnet_gif_uninit must run before the IP
# layers are destroyed (PROTO_IFATTACHDOMAIN/ANY, above PROTO_DOMAIN).
#
# Here vnet_gif_uninit is moved down to PSEUDO/ANY, as if gif were an
# ordinary cloned interface: it now runs after ip_destroy/ip6_destroy,
# detaching handles from encap tables that are gone. The witness reports
# it and `kldsim run configs/gif-order.hcl` exits 1.
#
# Run it with -var rank=PROTO_IFATTACHDOMAIN/ANY (the shipped rank) and
# it is clean.

variable "rank" {
  description = "the rank vnet_gif_uninit is registered with"
  type        = string
  default     = "PSEUDO/ANY"
}

module "if_gif" {
  rank_overrides = {
    vnet_gif_uninit = var.rank
  }
}

vnet "j1" {
  interface "gif0" {
    tunnel = { src = "192.0.2.1", dst = "192.0.2.2" }
  }
  interface "gif1" {
    tunnel = { src = "2001:db8::1", dst = "2001:db8::2" }
  }
}

scenario {
  steps = [
    "sysinit",
  ]
}
