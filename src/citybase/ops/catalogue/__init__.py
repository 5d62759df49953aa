"""The catalogue of the incident loop: the category tree (部件/事件) and the responsibility rules (权责清单)
that say which department handles a category, where and when."""
