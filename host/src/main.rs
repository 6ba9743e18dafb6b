fn main() {
    println!("http-autoinstrument: under construction");
}
