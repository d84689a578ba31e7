# Everything the language has: variables, locals, functions, dynamic blocks.
variable "jails" {
  type    = list(string)
  default = ["j1", "j2"]
}

variable "ems" {
  default = 4
}

locals {
  rules  = [for n in range(2) : format("add %d allow ip from any to any", 100 + n * 10)]
  inner  = local.outer
  outer  = upper("pseudo")
  tunnel = { src = "192.0.2.1", dst = "192.0.2.2" }
}

kernel {
  module_path  = ["modules", "/opt/kldsim/modules"]
  em_count     = var.ems
  shuffle_seed = 7
  call_timeout = "5s"
  legacy {
    teardown_if_first       = false
    detach_ignores_shutdown = false
  }
}

module "ipfw" {}
module "if_bridge" {
  sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
}
module "if_gif" {
  rank_overrides = {
    vnet_gif_uninit        = "${local.inner}/ANY"
    "if_gif:vnet_gif_init" = "SI_SUB_PROTO_IFATTACHDOMAIN/ANY-1"
  }
}
module "ip_mroute" {}

vnet "vnet0" {
  interface "bridge0" {
    members = ["em0", "em3"]
  }
}

dynamic "vnet" {
  for_each = var.jails
  labels   = [vnet.value]
  content {
    loan = ["em${vnet.key + 1}"]
    interface "gif0" {
      tunnel = local.tunnel
    }
    ipfw = local.rules
  }
}

vnet "j3" {
  multicast {
    router = true
    vifs   = ["lo0"]
  }
}

scenario {
  steps = [
    "ifconfig em1 -vnet j1",
    "ifconfig em1 vnet j1",
    "! kldload ipfw",
    "ipfw -j j2 list",
  ]
}
