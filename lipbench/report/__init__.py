"""Reports from a run directory, one module per concern:

- build: `write_report(run)`, every report file of a run (what `lipbench report` calls)
- results: per_clip.jsonl and results.json from the run's unit and metric files
- schema: the results document and its aggregation over clips
- stats: bootstrap confidence intervals over clips
- tables: the main table (Markdown, CSV, LaTeX; its cells for report.html)
- sections: the rest of the report's content, built once for both pages
- markdown: report.md
- html: report.html, one self-contained page
- plots: the figures (Pareto fronts, per-clip distributions, chunk arrivals)
- pareto: Pareto fronts
- paper: published tables to compare with (paper_tables/)
- gallery: previews/ and gallery/, the videos side by side
- compare: `lipbench compare`, two runs clip by clip
"""
