"""Polling: one cycle fetches each watched participant's new stats and hands them to
the rule engine, keeping a cursor per participant; failures are counted, never fatal.
"""
