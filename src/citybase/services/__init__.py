"""一网通办: the service catalogue, 一件事 bundles, applications without resubmission, approvals, 好差评."""
