"""Write planned deliveries as real spreadsheet files (.xlsx, legacy .xls with xlwt, .csv)."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import xlwt

from jc_pipeline.lib.demo.deliveries import Delivery, Row, Sheet
from jc_pipeline.lib.demo.manifest import FileRecord, QuirkLocation, SheetRecord
from jc_pipeline.lib.export import column_letter


def write_delivery(data_dir: Path, delivery: Delivery) -> tuple[FileRecord, list[tuple[str, QuirkLocation]]]:
    """Write one delivery; return its record and the located quirks (row numbers: header = 1)."""
    path = data_dir / delivery.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if delivery.file_format == "xlsx":
        _write_xlsx(path, delivery.sheets)
    elif delivery.file_format == "xls":
        _write_xls(path, delivery.sheets)
    else:
        (sheet,) = delivery.sheets
        _write_csv(path, sheet)
    record = FileRecord(
        path=delivery.path,
        layout=delivery.layout,
        file_format=delivery.file_format,
        agency_id=delivery.agency_id,
        sector=delivery.sector,
        sheets=tuple(
            SheetRecord(sheet.name, tuple(sheet.columns), len(sheet.rows), sum(_is_blank(row) for row in sheet.rows))
            for sheet in delivery.sheets
        ),
    )
    return record, list(_locations(delivery))


def _is_blank(row: Row) -> bool:
    return all(cell is None for cell in row.cells)


def _locations(delivery: Delivery):
    for sheet in delivery.sheets:
        for quirk, note in sheet.marks:
            yield quirk, QuirkLocation(delivery.path, sheet.name, None, note)
        for number, row in enumerate(sheet.rows, start=2):
            for quirk, note in row.marks:
                yield quirk, QuirkLocation(
                    delivery.path, sheet.name, number, note, row.agency_id, row.metric_key, row.year, row.month
                )


def _write_xlsx(path: Path, sheets: list[Sheet]) -> None:
    """A minimal Office Open XML workbook (inline strings, one default style).

    Written directly rather than through xlsxwriter, which spends ~15 us per cell: the demo's ~130,000
    workbook rows would take most of its time budget. Readers (Excel, calamine/fastexcel, openpyxl) accept
    inline strings; zip timestamps are fixed so the same seed gives the same bytes.
    """
    parts = {
        "[Content_Types].xml": _content_types(len(sheets)),
        "_rels/.rels": _RELS,
        "xl/workbook.xml": _workbook(sheets),
        "xl/_rels/workbook.xml.rels": _workbook_rels(len(sheets)),
        "xl/styles.xml": _STYLES,
    }
    for number, sheet in enumerate(sheets, start=1):
        parts[f"xl/worksheets/sheet{number}.xml"] = _worksheet(sheet)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), text.encode("utf-8"), zipfile.ZIP_DEFLATED)


def _worksheet(sheet: Sheet) -> str:
    letters = [column_letter(i) for i in range(len(sheet.columns))]
    lines = [_XML, f'<worksheet xmlns="{_MAIN_NS}"><sheetData>']
    for number, cells in enumerate([sheet.columns] + [row.cells for row in sheet.rows], start=1):
        xml_cells = "".join(
            _cell(f"{letter}{number}", cell) for letter, cell in zip(letters, cells) if cell is not None
        )
        lines.append(f'<row r="{number}">{xml_cells}</row>')
    lines.append("</sheetData></worksheet>")
    return "".join(lines)


def _cell(reference: str, value: object) -> str:
    if isinstance(value, str):
        # preserve: "march " and "person offenses " keep their trailing space
        return f'<c r="{reference}" t="inlineStr"><is><t xml:space="preserve">{escape(value)}</t></is></c>'
    return f'<c r="{reference}"><v>{value!r}</v></c>'


def _content_types(count: int) -> str:
    sheets = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_TYPE_PREFIX}.worksheet+xml"/>'
        for n in range(1, count + 1)
    )
    return (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPE_PREFIX}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_TYPE_PREFIX}.styles+xml"/>{sheets}</Types>'
    )


def _workbook(sheets: list[Sheet]) -> str:
    entries = "".join(
        f'<sheet name="{escape(sheet.name, {chr(34): "&quot;"})}" sheetId="{n}" r:id="rId{n}"/>'
        for n, sheet in enumerate(sheets, start=1)
    )
    return f'{_XML}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheets>{entries}</sheets></workbook>'


def _workbook_rels(count: int) -> str:
    sheets = "".join(
        f'<Relationship Id="rId{n}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, count + 1)
    )
    styles = f'<Relationship Id="rId{count + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
    return f'{_XML}<Relationships xmlns="{_PKG_REL_NS}">{sheets}{styles}</Relationships>'


_ZIP_TIME = (2026, 1, 1, 0, 0, 0)
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_TYPE_PREFIX = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_RELS = (
    f'{_XML}<Relationships xmlns="{_PKG_REL_NS}"><Relationship Id="rId1" '
    f'Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_STYLES = (
    f'{_XML}<styleSheet xmlns="{_MAIN_NS}"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    '</fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf/></cellStyleXfs>'
    '<cellXfs count="1"><xf xfId="0"/></cellXfs></styleSheet>'
)


def _write_xls(path: Path, sheets: list[Sheet]) -> None:
    workbook = xlwt.Workbook(encoding="utf-8")
    for sheet in sheets:
        worksheet = workbook.add_sheet(sheet.name)
        for column, name in enumerate(sheet.columns):
            worksheet.write(0, column, name)
        for index, row in enumerate(sheet.rows, start=1):
            for column, cell in enumerate(row.cells):
                if cell is not None:
                    worksheet.write(index, column, cell)
    workbook.save(str(path))


def _write_csv(path: Path, sheet: Sheet) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)  # Excel's CSV dialect, CRLF line ends, as agencies' exports have
        writer.writerow(sheet.columns)
        writer.writerows(["" if cell is None else cell for cell in row.cells] for row in sheet.rows)
