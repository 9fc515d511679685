"""qa0-label: the Streamlit entry point. Pages live in qa0_label/ui/; this file only wires the navigation."""

from pathlib import Path

import streamlit as st

# A local image, not a ":material/..." icon: Streamlit fetches a material page icon from an internet font
# host on every page, which fails (and leaks a request) on an observatory network without internet.
ICON = Path(__file__).resolve().parent / "qa0_label" / "ui" / "static" / "icon.png"
st.set_page_config(page_title="qa0-label · QA0 review", page_icon=str(ICON), layout="wide")

pages = [
    st.Page("qa0_label/ui/label.py", title="Label", icon=":material/fact_check:", default=True),
    st.Page("qa0_label/ui/agreement.py", title="Agreement", icon=":material/groups:", url_path="agreement"),
    st.Page("qa0_label/ui/model.py", title="Model", icon=":material/insights:", url_path="model"),
    st.Page("qa0_label/ui/data.py", title="Data", icon=":material/database:", url_path="data"),
]
st.navigation(pages, position="top").run()
