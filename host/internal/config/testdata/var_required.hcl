variable "count" {}

kernel {
  em_count = var.count
}
