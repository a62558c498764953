"""Building blocks of the HTML tear sheet (:func:`research.report.write_report` assembles them):
value formatting, plot helpers, plotly figures, HTML tables and the page shell."""
