Console.WriteLine("peft");
