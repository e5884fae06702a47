"""Grafana: dashboards, datasources, Prometheus and Loki through the datasource proxy, alerts, annotations."""
