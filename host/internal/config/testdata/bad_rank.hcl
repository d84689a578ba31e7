module "if_gif" {
  rank_overrides = {
    vnet_gif_uninit = "PSEUDO/WHENEVER"
  }
}
