"""One EB as the AoD sees it: view data, limits, warnings and charts; browsing."""
