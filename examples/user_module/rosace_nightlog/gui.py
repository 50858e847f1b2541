"""The night log's desktop tab, on the shell's ModuleTab base (network calls off the GUI thread)."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLineEdit, QListWidget, QPushButton

from rosace_desktop.tab import ModuleTab
from rosace_nightlog.notes import CATEGORIES


class NightLogTab(ModuleTab):
    """The list of notes, and a line to add one."""

    interval_ms = 5000

    def __init__(self, client, parent=None):
        super().__init__(client, parent)
        self.setObjectName("nightlogTab")
        self.list = QListWidget()
        self.list.setObjectName("notes")
        self.body.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.category = QComboBox()
        self.category.addItems(CATEGORIES)
        self.text = QLineEdit()
        self.text.setPlaceholderText("What happened?")
        self.text.returnPressed.connect(self.add_note)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self.add_note)
        row.addWidget(self.category)
        row.addWidget(self.text, 1)
        row.addWidget(self.add_button)
        self.body.addLayout(row)

    def fetch(self) -> list[dict]:
        """Return the notes (worker thread)."""
        return self.client.notes()

    def update_view(self, notes: list[dict]) -> None:
        """Show the notes (GUI thread)."""
        self.list.clear()
        for n in notes:
            self.list.addItem(f"{n['time'][:19]}  [{n['category']}]  {n['text']}")

    def add_note(self) -> None:
        """Send the typed note to the module (in the background), then refresh."""
        text, category = self.text.text().strip(), self.category.currentText()
        if not text:
            return
        self.text.clear()
        self.run_async(lambda: self.client.add(text, category), what="add note")


def create_widget(client) -> NightLogTab:
    """The desktop shell calls this with the module's client."""
    return NightLogTab(client)
