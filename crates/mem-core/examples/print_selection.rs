//! Prints the memory type each usage picks on every shipped device table.
use clap::Parser;
use mem_core::fake::DeviceTable;
use mem_core::selection::rank_memory_types;
use mem_core::MemoryUsage;

/// Print the memory type each usage picks on every shipped device table.
#[derive(Parser)]
struct Args {}

fn main() {
    Args::parse();
    for (name, table) in DeviceTable::all_builtin() {
        let props = table.memory_properties();
        let picks: Vec<String> = MemoryUsage::ALL
            .iter()
            .map(|u| format!("{u:?}={:?}", rank_memory_types(&props, *u).as_slice()))
            .collect();
        println!("{name:34} {}", picks.join(" "));
    }
}
