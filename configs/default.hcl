# The default kldsim run: every plugin module, several VNETs, and each
# kind of interface. `kldsim run` builds it, runs the scenario, tears it
# all down top-down and prints what ran and the witness verdict.

variable "firewalls" {
  description = "VNETs that run ipfw with their own rules"
  type        = list(string)
  default     = ["fw1", "fw2"]
}

kernel {
  em_count = 4
}

# Load order is file order. if_bridge pulls in bridgestp (MODULE_DEPEND).
module "ipfw" {}
module "if_bridge" {}
module "if_gif" {}
module "ip_mroute" {}
module "if_epair" {}

# The host's end of an epair; the other end goes to br.
vnet "vnet0" {
  interface "epair0" {}
}

# A loaned physical interface and an epair end, bridged.
vnet "br" {
  loan = ["em1", "epair0b"]
  interface "bridge0" {
    members = ["em1", "epair0b"]
  }
}

# gif tunnels over IPv4 and IPv6: each holds an encap handle owned by
# inet/inet6, so vnet_gif_uninit must run before ip_destroy.
vnet "tun" {
  loan = ["em2"]
  interface "gif0" {
    tunnel = { src = "192.0.2.1", dst = "198.51.100.1" }
  }
  interface "gif1" {
    tunnel = { src = "2001:db8::1", dst = "2001:db8:1::1" }
  }
}

# Two firewalls, each with its own rule set.
dynamic "vnet" {
  for_each = var.firewalls
  labels   = [vnet.value]
  content {
    ipfw = [
      "add 100 allow ip from any to any via lo0",
      format("add %d deny ip from 10.%d.0.0/16 to any", 200 + vnet.key, vnet.key),
      "add 300 count ip from any to any",
    ]
  }
}

# A multicast router with a vif on a loaned interface.
vnet "mr" {
  loan = ["em3"]
  multicast {
    router = true
    vifs   = ["em3"]
  }
}

scenario {
  steps = [
    "kldstat -v",
    "vnet list",
    "ifconfig -j br -a",
    # vmove out and back in: the bridge's departure handler drops em1.
    "ifconfig em1 -vnet br",
    "! ifconfig em1 -vnet br",
    "ifconfig em1 vnet br",
    "ifconfig -j br bridge0 addm em1",
    "ipfw -j fw1 list",
    "ipfw -j fw2 list",
    "! kldload ipfw",
    "kldload -n ipfw",
    "modctl -j mr ip_mroute list",
    # A VNET built and torn down while the others run; the end of a new
    # pair lent to it comes home with its destroy, and destroying the
    # other end takes both.
    "vnet create scratch",
    "ifconfig epair create",
    "ifconfig epair1b vnet scratch",
    "vnet destroy scratch",
    "ifconfig epair1a destroy",
    "witness",
  ]
}
