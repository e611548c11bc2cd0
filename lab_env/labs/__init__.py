"""The course: its labs in order (`course`), the check framework (`checks`), one package per lab.

Each lab's package holds its checks and lab-only helpers; its docstring is the lab's map.
"""
