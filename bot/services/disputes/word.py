"""Documents as DOCX (python-docx): A4, 宋体 body and 黑体 titles set for East Asian text, so the
file opens as the office expects in WPS and Word, and stays editable (plain paragraphs and tables)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from bot.services.disputes.documents import Document, Grid, Para, Signatures, Table

BODY_FONT = "宋体"
TITLE_FONT = "黑体"


def _east_asian(run_or_style: Any, name: str) -> None:
    """python-docx sets the Latin font only; Chinese text needs w:eastAsia too."""
    from docx.oxml.ns import qn

    run_or_style.font.name = name
    rpr = run_or_style.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), name)


def to_docx(documents: Sequence[Document]) -> bytes:
    """One DOCX with the documents one after another, each on a new page."""
    from docx import Document as NewDocument
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
    from docx.shared import Mm, Pt

    book = NewDocument()
    section = book.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin = section.bottom_margin = Mm(25)
    section.left_margin = section.right_margin = Mm(26)
    normal = book.styles["Normal"]
    _east_asian(normal, BODY_FONT)
    normal.font.size = Pt(12)
    normal.paragraph_format.space_after = Pt(4)
    normal.paragraph_format.line_spacing = 1.35
    align = {"left": WD_ALIGN_PARAGRAPH.LEFT, "center": WD_ALIGN_PARAGRAPH.CENTER, "right": WD_ALIGN_PARAGRAPH.RIGHT}

    for index, document in enumerate(documents):
        title = book.add_paragraph()
        if index:
            title.paragraph_format.page_break_before = True
        title.alignment = WD_ALIGN_PARAGRAPH.CENTER
        run = title.add_run(document.title)
        _east_asian(run, TITLE_FONT)
        run.font.size, run.bold = Pt(20), True
        number = book.add_paragraph(f"编号：{document.number}")
        number.alignment = WD_ALIGN_PARAGRAPH.RIGHT
        for block in document.blocks:
            if isinstance(block, Para):
                paragraph = book.add_paragraph()
                paragraph.alignment = align.get(block.align, WD_ALIGN_PARAGRAPH.LEFT)
                if block.indent:
                    paragraph.paragraph_format.first_line_indent = Pt(24)
                text_run = paragraph.add_run(block.text)
                text_run.bold = block.bold
            elif isinstance(block, Grid):
                table = book.add_table(rows=0, cols=2)
                table.style = "Table Grid"
                for label, value in block.rows:
                    cells = table.add_row().cells
                    cells[0].width, cells[1].width = Mm(36), Mm(122)
                    cells[0].paragraphs[0].add_run(label).bold = True
                    cells[1].paragraphs[0].add_run(value)
                book.add_paragraph()
            elif isinstance(block, Table):
                table = book.add_table(rows=1, cols=len(block.header))
                table.style = "Table Grid"
                for cell, name in zip(table.rows[0].cells, block.header, strict=True):
                    cell.paragraphs[0].add_run(name).bold = True
                for row in block.rows:
                    for cell, value in zip(table.add_row().cells, row, strict=True):
                        cell.paragraphs[0].add_run(value)
                book.add_paragraph()
            elif isinstance(block, Signatures):
                gap = book.add_paragraph()
                gap.add_run().add_break(WD_BREAK.LINE)
                for line in block.lines:
                    signature = book.add_paragraph(line)
                    signature.alignment = WD_ALIGN_PARAGRAPH.RIGHT
                    signature.paragraph_format.space_after = Pt(14)
    book.core_properties.title = documents[0].title if documents else ""
    book.core_properties.author = "乡法通"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
