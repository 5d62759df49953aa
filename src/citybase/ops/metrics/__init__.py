"""Metrics of the incident loop: 按期办结率, 满意率, 重复率, 退单率, 先行联系率 by group, and hotspots."""
