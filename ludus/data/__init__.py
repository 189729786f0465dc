"""Market data: symbols, bars, the price store in Delphi's layout, validation and market conditions."""
