"""Judging translations: corpus scores, breakdowns, significance, leaks, comparisons."""
