"""qa0-label: the Streamlit entry point. Pages live in qa0_label/ui/; this file only wires the navigation."""

import streamlit as st

st.set_page_config(page_title="qa0-label · QA0 review", page_icon=":material/satellite_alt:", layout="wide")

pages = [
    st.Page("qa0_label/ui/label.py", title="Label", icon=":material/fact_check:", default=True),
    st.Page("qa0_label/ui/agreement.py", title="Agreement", icon=":material/groups:", url_path="agreement"),
    st.Page("qa0_label/ui/model.py", title="Model", icon=":material/insights:", url_path="model"),
    st.Page("qa0_label/ui/data.py", title="Data", icon=":material/database:", url_path="data"),
]
st.navigation(pages, position="top").run()
