"""Business rules shared by the site, the API, the admin and the worker."""
