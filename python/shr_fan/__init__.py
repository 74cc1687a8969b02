"""shr_fan: the FAN application around shr_ops (data, training, evaluation, studies, CLI `shr-fan`).

Depends on shr_ops only through its public API.
"""
__version__ = "0.1.0"
