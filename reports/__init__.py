"""Figures (plotnine) and the HTML report marketers read."""
