"""Stand-ins for the parts of Slicer that need its Qt GUI process, so the module's Widget and Logic run
here on a real MRML scene (slicer-core): everything MRML is real, only these are imitated.

- ``qt``: timers (fired by hand), the file dialog and desktop services.
- the widgets of ``MRSynth.ui``: one small object per widget the .ui declares, with the properties,
  methods and signals the module uses (built from the .ui itself, so a renamed widget fails here too).
- ``slicer.parameterNodeWrapper``: a small working copy that stores each field in a real
  ``vtkMRMLScriptedModuleNode`` (so its ModifiedEvent is real) and binds widgets by ``SlicerParameterName``
  the way Slicer's connectors do (a node combo box, a QComboBox filled from a ``Choice``, a check box,
  a slider or spin box).
- ``slicer.ScriptedLoadableModule`` base classes, ``slicer.app`` (layout manager with a real Red slice
  node, testing mode off) and the dialog functions of ``slicer.util`` (recorded in ``Gui.dialogs``).
"""

from __future__ import annotations

import types
import typing
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "MRSynth" / "MRSynth.py"
UI = ROOT / "MRSynth" / "Resources" / "UI" / "MRSynth.ui"


class Signal:
    """A Qt signal: slots run in connection order, unless the owner blocks its signals."""

    def __init__(self, owner=None) -> None:
        self._owner, self._slots = owner, []

    def connect(self, slot) -> None:
        self._slots.append(slot)

    def disconnect(self, slot) -> None:
        self._slots.remove(slot)

    def emit(self, *args) -> None:
        if self._owner is None or not self._owner._blocked:
            for slot in list(self._slots):
                slot(*args)


# --- widgets ------------------------------------------------------------------------------------------
class Widget:
    def __init__(self, name: str = "", props: dict | None = None) -> None:
        self.objectName, self._props, self._blocked = name, props or {}, False
        self.enabled, self.visible, self.toolTip, self.text = True, True, "", self._props.get("text", "")

    def property(self, key: str):
        return self._props.get(key)

    def setVisible(self, visible: bool) -> None:
        self.visible = visible

    def setText(self, text: str) -> None:
        self.text = text

    def blockSignals(self, block: bool) -> bool:
        old, self._blocked = self._blocked, block
        return old

    def setMRMLScene(self, scene) -> None:
        self.scene = scene


class NodeComboBox(Widget):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._node, self.currentNodeChanged = None, Signal(self)

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node) -> None:
        if node is not self._node:
            self._node = node
            self.currentNodeChanged.emit(node)


class _Item:
    def __init__(self) -> None:
        self.enabled = True

    def setEnabled(self, enabled: bool) -> None:
        self.enabled = enabled


class ComboBox(Widget):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._items: list[list] = []  # [text, data, _Item]
        self._index = -1
        self.currentIndexChanged, self.currentTextChanged = Signal(self), Signal(self)

    def addItem(self, text: str, data=None) -> None:
        self._items.append([text, data, _Item()])
        if self._index < 0:
            self.currentIndex = 0

    def addItems(self, texts) -> None:
        for t in texts:
            self.addItem(t)

    def clear(self) -> None:
        self._items = []
        self.currentIndex = -1

    @property
    def count(self) -> int:
        return len(self._items)

    @property
    def currentIndex(self) -> int:
        return self._index

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:
        if index != self._index:
            self._index = index
            self.currentIndexChanged.emit(index)
            self.currentTextChanged.emit(self.currentText)

    @property
    def currentText(self) -> str:
        return self._items[self._index][0] if self._index >= 0 else ""

    @property
    def currentData(self):
        return self._items[self._index][1] if self._index >= 0 else None

    def itemText(self, row: int) -> str:
        return self._items[row][0]

    def findData(self, data) -> int:
        return next((i for i, it in enumerate(self._items) if it[1] == data), -1)

    def setCurrentText(self, text: str) -> None:
        self.currentIndex = next(i for i, it in enumerate(self._items) if it[0] == text)

    def model(self):
        return types.SimpleNamespace(item=lambda row: self._items[row][2])


class CheckBox(Widget):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._checked, self.toggled = False, Signal(self)

    @property
    def checked(self) -> bool:
        return self._checked

    @checked.setter
    def checked(self, on: bool) -> None:
        if bool(on) != self._checked:
            self._checked = bool(on)
            self.toggled.emit(self._checked)


class RadioButton(CheckBox):
    """QRadioButton: checked like a check box; ``autoExclusive`` is the attribute the module toggles to uncheck."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.autoExclusive = True

    @CheckBox.checked.setter
    def checked(self, on: bool) -> None:
        assert on or not self.autoExclusive or not self._checked, "Qt ignores unchecking an auto-exclusive radio button"
        CheckBox.checked.fset(self, on)


class PathLineEdit(Widget):  # ctkPathLineEdit
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.currentPath = ""


class ValueWidget(Widget):  # ctkSliderWidget, QSpinBox, QProgressBar
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._value, self.valueChanged = 0, Signal(self)

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v) -> None:
        if v != self._value:
            self._value = v
            self.valueChanged.emit(v)


class Button(Widget):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.clicked = Signal(self)

    def click(self) -> None:
        if self.enabled:
            self.clicked.emit()


class PlainTextEdit(Widget):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.lines: list[str] = []

    def appendPlainText(self, text: str) -> None:
        self.lines.append(text)

    def clear(self) -> None:
        self.lines = []


WIDGETS = {"qMRMLNodeComboBox": NodeComboBox, "QComboBox": ComboBox, "QCheckBox": CheckBox,
           "ctkSliderWidget": ValueWidget, "QSpinBox": ValueWidget, "QProgressBar": ValueWidget,
           "QPushButton": Button, "QPlainTextEdit": PlainTextEdit, "QRadioButton": RadioButton,
           "ctkPathLineEdit": PathLineEdit}  # QLineEdit: a Widget (its ``text``)


def ui_widgets() -> types.SimpleNamespace:
    """One stand-in per named widget of MRSynth.ui, with its string properties (SlicerParameterName…)."""
    out = {}
    for w in ET.parse(UI).iter("widget"):
        props = {p.get("name"): p.findtext("string") for p in w.findall("property") if p.find("string") is not None}
        out[w.get("name")] = WIDGETS.get(w.get("class"), Widget)(w.get("name"), props)
    return types.SimpleNamespace(**out)


# --- slicer.parameterNodeWrapper ----------------------------------------------------------------------
class Choice:
    def __init__(self, choices) -> None:
        self.choices = list(choices)


class WithinRange:
    def __init__(self, lo, hi) -> None:
        self.lo, self.hi = lo, hi


def _connector(widget, choice):
    """(read, write, signal) for a widget, like Slicer's GUI connectors."""
    if isinstance(widget, NodeComboBox):
        return widget.currentNode, widget.setCurrentNode, widget.currentNodeChanged
    if isinstance(widget, ComboBox):
        widget.clear()
        widget.addItems([str(c) for c in choice.choices])
        return (lambda: choice.choices[widget.currentIndex],
                lambda v: setattr(widget, "currentIndex", choice.choices.index(v)), widget.currentIndexChanged)
    if isinstance(widget, CheckBox):
        return (lambda: widget.checked), (lambda v: setattr(widget, "checked", v)), widget.toggled
    return (lambda: widget.value), (lambda v: setattr(widget, "value", v)), widget.valueChanged


def parameterNodeWrapper(cls):
    import slicer
    import vtk

    fields = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        base, meta = (hint.__origin__, hint.__metadata__) if hasattr(hint, "__metadata__") else (hint, ())
        is_node = isinstance(base, type) and issubclass(base, slicer.vtkMRMLNode)
        fields[name] = (base, is_node, next((m for m in meta if isinstance(m, Choice)), None), cls.__dict__.get(name))
        setattr(cls, name, property(lambda self, n=name: self._read(n), lambda self, v, n=name: self._write(n, v)))

    def init(self, node) -> None:
        self.parameterNode, self._guis = node, {}
        for n, (_, is_node, _, default) in fields.items():
            if not is_node and n not in (node.GetParameterNames() or []):
                self._write(n, default)

    def read(self, n):
        base, is_node, _, _ = fields[n]
        if is_node:
            return self.parameterNode.GetNodeReference(n)
        raw = self.parameterNode.GetParameter(n)
        return raw == "True" if base is bool else base(raw)

    def write(self, n, value) -> None:
        if fields[n][1]:
            self.parameterNode.SetNodeReferenceID(n, value.GetID() if value is not None else None)
        else:
            self.parameterNode.SetParameter(n, str(value))

    def connectGui(self, ui) -> int:
        bound = {}
        for widget in vars(ui).values():
            name = widget.property("SlicerParameterName")
            if name:
                read_w, write_w, signal = _connector(widget, fields[name][2])
                bound[name] = (read_w, write_w, signal, lambda *_a, n=name, r=read_w: self._fromGui(n, r))
        state = {"updating": False}

        def to_gui(*_args) -> None:
            state["updating"] = True
            try:
                for n, (_, write_w, _, _) in bound.items():
                    write_w(getattr(self, n))
            finally:
                state["updating"] = False

        to_gui()
        for _, _, signal, slot in bound.values():
            signal.connect(slot)
        tag = len(self._guis) + 1
        self._guis[tag] = (bound, state, self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, to_gui))
        return tag

    def fromGui(self, n, read_w) -> None:
        if not any(state["updating"] for _, state, _ in self._guis.values()):
            setattr(self, n, read_w())

    def disconnectGui(self, tag) -> None:
        if tag in self._guis:
            bound, _, observer = self._guis.pop(tag)
            for _, _, signal, slot in bound.values():
                signal.disconnect(slot)
            self.parameterNode.RemoveObserver(observer)

    cls.__init__, cls._read, cls._write, cls._fromGui = init, read, write, fromGui
    cls.connectGui, cls.disconnectGui, cls.allParameters = connectGui, disconnectGui, fields
    cls.AddObserver = lambda self, event, cb, priority=0.0: self.parameterNode.AddObserver(event, cb, priority)
    cls.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    return cls
