"""An invoice as a PDF (fpdf2: pure Python, core fonts, no network)."""

from __future__ import annotations

from fpdf import FPDF

from bgp_orchestrator.portal.billing import Invoice


def _latin1(text: str) -> str:
    # The PDF core fonts are Latin-1; anything else is replaced, never an error.
    return text.encode("latin-1", "replace").decode("latin-1")


def invoice_pdf(invoice: Invoice) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"Invoice {invoice.number}")
    pdf.set_author("BGP Orchestrator")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    title = "Invoice (draft, to date)" if invoice.draft else "Invoice"
    pdf.cell(0, 10, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for label, value in (
        ("Number", invoice.number),
        ("Customer", invoice.tenant),
        ("Period", f"{invoice.start:%Y-%m-%d} to {invoice.end:%Y-%m-%d %H:%M} UTC"),
    ):
        pdf.cell(30, 6, label)
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = (105, 25, 30, 25)
    pdf.set_font("Helvetica", "B", 9)
    for width, head in zip(
        widths, ("Description", "Quantity", "Unit price", "Amount"), strict=True
    ):
        pdf.cell(width, 7, head, border="B", align="L" if head == "Description" else "R")
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    for line in invoice.lines:
        cells = (line.description, line.quantity, line.unit_price, f"{line.amount:,.2f}")
        for width, text, align in zip(widths, cells, "LRRR", strict=True):
            pdf.cell(width, 6, _latin1(text)[:70], align=align)
        pdf.ln()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(sum(widths[:3]), 8, "Total (USD)", border="T", align="R")
    pdf.cell(widths[3], 8, f"{invoice.total:,.2f}", border="T", align="R")
    pdf.ln()
    return bytes(pdf.output())
