"""The Textual app. It consumes engine events and sends engine controls, nothing more."""
