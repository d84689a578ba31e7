# default
# the default order: `kldsim run` reproduces it as configured

# tie orders
kernel {
  tie_order {
    init = {
      "PROTO_DOMAIN/SECOND" = [
        "inet6:vnet_inet6_init",
        "pfwatch:vnet_pfwatch_init",
        "inet:vnet_inet_init",
        "ipfw:vnet_ipfw_init",
      ]
      "PROTO_FIREWALL/ANY-253" = ["b:x", "a:y"]
    }
    uninit = {
      "PROTO_IFATTACHDOMAIN/ANY" = ["if_gif:vnet_gif_uninit", "if_bridge:vnet_bridge_uninit"]
    }
  }
}

# move in a plugin file
module "if_gif" {
  rank_overrides = {
    "if_gif:vnet_gif_uninit" = "PSEUDO/ANY"
  }
}

# move of a dependency's entry goes in its file's block
module "if_bridge" {
  rank_overrides = {
    "bridgestp:vnet_stp_init" = "PSEUDO/ANY"
  }
}

# move of a builtin
kernel {
  rank_overrides = {
    "inet:ip_destroy" = "PROTO_DOMAIN/FOURTH"
  }
}

# move of an unknown file
module "x" {
  rank_overrides = {
    "x:y" = "PSEUDO/ANY"
  }
}

# fault
kernel {
  faults = {
    "if_gif:vnet_gif_init" = "crash"
  }
}

# strange names stay literal
module "m\"$${x}%%{y}\\" {
  rank_overrides = {
    "m\"$${x}%%{y}\\:e" = "PSEUDO/ANY"
  }
}

