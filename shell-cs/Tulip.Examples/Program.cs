Console.WriteLine("examples");
