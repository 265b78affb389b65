"""The VIP phase's parts: patch templates (templates), which form a node wants and what it changes
(forms), reading the nodes (survey), the steps (steps, holder) and the offline render (render).
The phase itself is `labup.phases.vip`."""
