"""Controllers: informer -> workqueue -> level-based ``reconcile(key)``, through the API only."""
