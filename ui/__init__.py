"""The Gradio studio's parts: one module per tab, plus what the tabs share. Knows people, not HTTP."""
