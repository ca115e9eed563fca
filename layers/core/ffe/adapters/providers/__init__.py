"""Live market-data providers (Alpha Vantage, Coinbase, Oanda) over httpx."""
