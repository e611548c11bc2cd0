"""The course: its labs in order (`course`), the check framework (`checks`), and one package per lab with its checks and lab-only helpers."""
