"""Activation: who to reach (audiences) and, later, how to send them out (exports, consent).
Pure Python over the warehouse's tables; no orchestration here."""
