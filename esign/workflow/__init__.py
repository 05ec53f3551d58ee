"""Workflow definitions and the state machine: pure Python, standard library only.

- :mod:`esign.workflow.definition`: the TOML definitions, validated completely at load.
- :mod:`esign.workflow.engine`: which action may fire, quorum, signature fields.
- :mod:`esign.workflow.authority`: the Vietnamese authority forms (KT., TL., TUQ., Q., TM.).
- :mod:`esign.workflow.calendar`: working days and hours for step deadlines.

Nothing here reads the clock, touches a database or imports Flask or pyHanko;
only the loaders read files.
"""
